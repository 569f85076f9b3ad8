"""What a job records about the inside of its network, in the database: per-layer diagnostics
rows (``training.diagnostics``), the findings drawn from them and from the history (the job's
and the model's ``warnings``), the gradient-check report and the validation evaluation.

The runner calls ``records`` as epochs finish, ``forget_after`` when a new attempt resumes from a
checkpoint, and ``reports`` when the job ends; the API reads ``page``, the event stream
``between``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

import backprop
from backprop.diagnostics import FIELDS

from .models import DiagnosticRecord, EpochRecord

COLUMNS = {name: name.lower() for name in FIELDS}  # grad_norm_W -> grad_norm_w
SELECTED = [getattr(DiagnosticRecord, c) for c in ("epoch", "layer", "activation",
                                                   *COLUMNS.values())]


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def records(job_id: str, epochs: Iterable[tuple[int, list[dict[str, Any]]]]
            ) -> list[DiagnosticRecord]:
    """Rows for ``(epoch, layers)`` pairs as the training callback receives them."""
    return [DiagnosticRecord(job_id=job_id, epoch=epoch, layer=row["layer"],
                             activation=row["activation"],
                             **{col: _finite(row[key]) for key, col in COLUMNS.items()})
            for epoch, layers in epochs for row in layers]


def forget_after(s: Session, job_id: str, epoch: int) -> None:
    """Drop the rows of epochs after ``epoch`` (a lost attempt's, about to be redone)."""
    s.execute(delete(DiagnosticRecord).where(DiagnosticRecord.job_id == job_id,
                                             DiagnosticRecord.epoch > epoch))


def layer_out(r: Any) -> dict[str, Any]:
    return {"layer": r.layer, "activation": r.activation,
            **{key: getattr(r, col) for key, col in COLUMNS.items()}}


def between(s: Session, job_id: str, after: int, upto: int) -> list[dict[str, Any]]:
    """The recorded epochs in ``(after, upto]``, each ``{"epoch", "layers": [...]}``."""
    items: list[dict[str, Any]] = []
    for r in s.execute(select(*SELECTED)  # columns, not ORM objects: half the time
                       .where(DiagnosticRecord.job_id == job_id, DiagnosticRecord.epoch > after,
                              DiagnosticRecord.epoch <= upto)
                       .order_by(DiagnosticRecord.epoch, DiagnosticRecord.layer)):
        if not items or items[-1]["epoch"] != r.epoch:
            items.append({"epoch": r.epoch, "layers": []})
        items[-1]["layers"].append(layer_out(r))
    return items


def page(s: Session, job_id: str, after: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` epochs after ``after``, each ``{"epoch", "layers": [...]}``."""
    epochs = s.scalars(select(DiagnosticRecord.epoch).distinct()
                       .where(DiagnosticRecord.job_id == job_id, DiagnosticRecord.epoch > after)
                       .order_by(DiagnosticRecord.epoch).limit(limit + 1)).all()
    shown = epochs[:limit]
    items = between(s, job_id, shown[0] - 1, shown[-1]) if shown else []
    more = len(epochs) > limit
    return {"items": items, "next_cursor": str(shown[-1]) if more else None}


def pending(s: Session, job_id: str, after: int, upto: int) -> bool:
    """Whether any epoch in ``(after, upto]`` recorded diagnostics."""
    return s.scalar(select(DiagnosticRecord.epoch).where(
        DiagnosticRecord.job_id == job_id, DiagnosticRecord.epoch > after,
        DiagnosticRecord.epoch <= upto).limit(1)) is not None


def findings(s: Session, job_id: str) -> list[dict[str, Any]]:
    """The findings of the whole run as recorded in the database (every attempt's epochs)."""
    history = [{"epoch": e, "loss": loss, "val_loss": val} for e, loss, val in s.execute(
        select(EpochRecord.epoch, EpochRecord.loss, EpochRecord.val_loss)
        .where(EpochRecord.job_id == job_id).order_by(EpochRecord.epoch))]
    diagnostics: list[dict[str, Any]] = []
    for r in s.execute(select(DiagnosticRecord.epoch, DiagnosticRecord.layer,
                              DiagnosticRecord.activation, DiagnosticRecord.grad_norm_w,
                              DiagnosticRecord.dead_fraction,
                              DiagnosticRecord.saturated_fraction)
                       .where(DiagnosticRecord.job_id == job_id)
                       .order_by(DiagnosticRecord.epoch, DiagnosticRecord.layer)):
        if not diagnostics or diagnostics[-1]["epoch"] != r.epoch:
            diagnostics.append({"epoch": r.epoch, "layers": []})
        diagnostics[-1]["layers"].append({
            "layer": r.layer, "activation": r.activation, "grad_norm_W": r.grad_norm_w,
            "dead_fraction": r.dead_fraction, "saturated_fraction": r.saturated_fraction})
    return backprop.findings(history, diagnostics)


def reports(s: Session, job_id: str, model: backprop.Model, whole_run: bool
            ) -> dict[str, Any]:
    """What the finished job stores on itself (``gradient_check``, ``warnings``); the model
    stores these and ``evaluation`` (the report on the validation rows, if any). When this
    attempt trained the ``whole_run`` (no resume), the engine's own findings are the run's;
    a resumed attempt's are read from every attempt's rows in the database."""
    warnings = model.warnings if whole_run else findings(s, job_id)
    return {"gradient_check": model.gradient_check, "warnings": warnings}
