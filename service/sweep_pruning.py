"""Early stopping of hopeless sweep trials, from the trials' history rows.

- ``median``: a running trial past ``warmup_epochs`` whose best metric so far is worse than the
  median, over the succeeded trials (at least ``min_trials`` of them), of their best metric up to
  the same epoch.
- ``successive_halving`` (asynchronous, as in ASHA): rungs at ``min_epochs * rf**k`` epochs. A
  trial that has reached rung ``r`` continues only while it is in the top ``1/rf`` of all the
  trials that reached ``r`` (once at least ``rf`` of them have).

A pruned trial is flagged (``cancel_requested`` and ``pruned``): its worker stops it within an
epoch, and it ends ``cancelled``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import EpochRecord, Job

COLUMNS = {"loss": EpochRecord.loss, "val_loss": EpochRecord.val_loss,
           "accuracy": EpochRecord.accuracy, "val_accuracy": EpochRecord.val_accuracy}


def _curves(s: Session, trials: list[Job], metric: str, upto: int) -> dict[str, np.ndarray]:
    """Per trial, its best-so-far metric by epoch (index ``e - 1``), oriented so lower is
    better."""
    col = COLUMNS[metric]
    rows = s.execute(select(EpochRecord.job_id, EpochRecord.epoch, col)
                     .where(EpochRecord.job_id.in_([t.id for t in trials]),
                            EpochRecord.epoch <= upto)
                     .order_by(EpochRecord.job_id, EpochRecord.epoch)).all()
    raw: dict[str, list[float]] = defaultdict(list)
    for job_id, _, value in rows:
        raw[job_id].append(math.inf if value is None else float(value))
    sign = -1.0 if metric.endswith("accuracy") else 1.0
    return {job_id: np.minimum.accumulate(sign * np.asarray(v)) for job_id, v in raw.items()}


def _median_prunes(curves: dict[str, np.ndarray], running: list[Job], done: list[Job],
                   cfg: dict[str, Any]) -> list[Job]:
    if len(done) < cfg["min_trials"]:
        return []
    out = []
    for t in running:
        curve = curves.get(t.id)
        if curve is None or len(curve) <= cfg["warmup_epochs"]:
            continue
        e = len(curve)
        others = [curves[d.id][min(e, len(curves[d.id])) - 1] for d in done if d.id in curves]
        if len(others) >= cfg["min_trials"] and curve[-1] > float(np.median(others)):
            out.append(t)
    return out


def _halving_prunes(curves: dict[str, np.ndarray], running: list[Job], everyone: list[Job],
                    cfg: dict[str, Any]) -> list[Job]:
    rf, r0 = cfg["reduction_factor"], cfg["min_epochs"]
    out = []
    for t in running:
        curve = curves.get(t.id)
        if curve is None or len(curve) < r0:
            continue
        rung = r0 * rf ** int(math.log(len(curve) / r0, rf) + 1e-9)
        at_rung = [curves[o.id][rung - 1] for o in everyone
                   if o.id in curves and len(curves[o.id]) >= rung]
        if len(at_rung) < rf:
            continue
        keep = max(1, len(at_rung) // rf)
        if curve[rung - 1] > sorted(at_rung)[keep - 1]:
            out.append(t)
    return out


def to_prune(s: Session, spec: dict[str, Any], trials: list[Job]) -> list[Job]:
    """The running trials the sweep's pruner stops now."""
    cfg = spec["pruner"]
    running = [t for t in trials if t.status == "running" and not t.pruned
               and not t.cancel_requested]
    if not running:
        return []
    done = [t for t in trials if t.status == "succeeded"]
    upto = max(t.epoch for t in running)
    curves = _curves(s, trials, spec["metric"], upto)
    if cfg["name"] == "median":
        return _median_prunes(curves, running, done, cfg)
    return _halving_prunes(curves, running, trials, cfg)
