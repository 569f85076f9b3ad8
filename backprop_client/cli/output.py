"""How the CLI prints: aligned tables for people, JSON for scripts, problems on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

from ..errors import APIError, BackpropError, JobError


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, list | tuple):
        return ",".join(cell(v) for v in value)
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table on stdout (nothing but the header when there are no rows)."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
               .rstrip())
    for r in text:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """``name  value`` lines, for one resource."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        click.echo(f"{key.ljust(width)}  {cell(value)}")


def as_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def problem(exc: BackpropError) -> None:
    """The error on stderr: the problem's title and detail, and each field error."""
    if isinstance(exc, APIError):
        click.echo(f"error: {exc.status} {exc.title}: {exc.detail}", err=True)
        for err in exc.errors:
            where = ".".join(str(p) for p in err.get("loc", [])) or "(body)"
            click.echo(f"  {where}: {err.get('msg')}", err=True)
    elif isinstance(exc, JobError):
        click.echo(f"error: job {exc.job.id} {exc.job.status}: {exc.title}: {exc.detail}",
                   err=True)
    else:
        click.echo(f"error: {exc}", err=True)


def stdin_text() -> str:
    if sys.stdin.isatty():
        raise click.UsageError("give --input FILE, or pipe JSON rows on stdin")
    return sys.stdin.read()
