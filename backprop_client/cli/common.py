"""Options and helpers every command group shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..client import Client
from .output import as_json, cell

F = Callable[..., Any]


def client() -> Client:
    return click.get_current_context().obj.client


def json_option(f: F) -> F:
    return click.option("--json", "as_json_", is_flag=True, help="Print JSON (for scripts).")(f)


def quiet_option(f: F) -> F:
    return click.option("-q", "--quiet", is_flag=True,
                        help="Print only the new id (to capture it: ID=$(bp ... -q)).")(f)


def field_option(f: F) -> F:
    return click.option("--field", metavar="NAME", default=None,
                        help="Print only this field (e.g. model_id, status).")(f)


def show(raw: dict[str, Any], field: str | None, json_: bool, people: Callable[[], None]) -> None:
    """One resource: a single ``--field``, ``--json``, or the people's view."""
    if field is not None:
        if field not in raw:
            raise click.UsageError(f"no field {field!r}; choose one of {sorted(raw)}")
        value = raw[field]
        if isinstance(value, dict | list):
            as_json(value)
        else:
            click.echo("" if value is None else cell(value) if isinstance(value, float)
                       else str(value))
    elif json_:
        as_json(raw)
    else:
        people()
