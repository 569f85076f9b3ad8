"""The end of a job that trained: its model, the last history rows and the job's final state
in one transaction, fenced by the attempt.

A job that ran to its end succeeds. One cancelled while running, or stopped at its time limit,
ends ``cancelled`` or ``failed`` and keeps what it learnt all the same: a model of its best
weights so far (by validation loss; the last without validation rows), marked ``partial`` with
the epoch it reached, that predicts and can be continued. Every model keeps its final training
state, once, for ``continue_from``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

import backprop
from service import inspection, storage, wake
from service.continuation import total_epochs
from service.db import session_scope
from service.models import Job, TrainedModel, new_id, utcnow

from .claim import Claim, drop_checkpoint
from .recorder import Recorder

JOBS = Job.__table__
ENDINGS = {"succeeded": "succeeded", "cancelled": "cancelled", "time_limit": "failed"}


def store(c: Claim, model: backprop.Model, task: str, recorder: Recorder, ending: str,
          time_limit: float) -> str | None:
    """End the job as ``ending`` (``succeeded``, ``cancelled`` or ``time_limit``) with its
    model; ``None`` when the job is no longer this attempt's. ``finished_at`` is taken once the
    model's bytes are written, just before the commit that shows them all."""
    data = model.to_bytes()  # before the transaction: no write lock held while it serialises
    partial = None if ending == "succeeded" else {
        "reason": ending, "epoch": model.epochs_done, "epochs": total_epochs(c.spec)}
    parent = (c.spec.get("continue_from") or {}).get("model_id")
    with session_scope() as s:
        if recorder.flush(s) and recorder.lost:
            s.rollback()
            return None
        model_id = new_id("mdl")
        reports = inspection.reports(s, c.job_id, model, whole_run=c.checkpoint is None)
        blob = storage.put(s, data)
        state = storage.put(s, model.training_state) if model.training_state else None
        s.flush()
        s.add(TrainedModel(id=model_id, tenant_id=c.tenant_id, job_id=c.job_id,
                           dataset_id=c.dataset_id, spec=model.spec, inputs=model.n_inputs,
                           outputs=model.n_outputs, task=task, classes=model.classes,
                           feature_names=model.feature_names or [],
                           metrics={**model.metrics, "stop_reason": model.stop_reason},
                           evaluation=model.evaluation, **reports, blob_id=blob.id,
                           state_blob_id=state.id if state else None,
                           epochs_trained=model.epochs_done, parent_model_id=parent,
                           partial=partial))
        s.flush()
        owned = s.execute(update(JOBS).where(JOBS.c.id == c.job_id,
                                             JOBS.c.attempts == c.attempt,
                                             JOBS.c.status == "running")
                          .values(status=ENDINGS[ending], finished_at=utcnow(),
                                  eta_seconds=None, model_id=model_id, metrics=model.metrics,
                                  **_error(ending, model, model_id, time_limit), **reports)
                          .returning(JOBS.c.checkpoint_blob_id)).first()
        if owned is None:  # another attempt has the job: nothing of this one is kept
            s.rollback()
            return None
        if owned.checkpoint_blob_id:
            drop_checkpoint(s, c.job_id, owned.checkpoint_blob_id)
    wake.notify(c.job_id)
    return ENDINGS[ending]


def _error(ending: str, model: backprop.Model, model_id: str, limit: float) -> dict[str, Any]:
    if ending != "time_limit":
        return {}
    return {"error_title": "Time limit exceeded",
            "error_detail": f"the job ran up to its limit of {limit:g} s (TASK_SOFT_TIME_LIMIT) "
                            f"and stopped at epoch {model.epochs_done}; what it learnt is kept "
                            f"as the partial model {model_id}, which predicts and can be "
                            "trained further with continue_from. Reduce epochs or rows, or "
                            "raise the limit"}
