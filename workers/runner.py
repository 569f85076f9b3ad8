"""Running one training job: load it, train with callbacks that record progress, history and
checkpoints, honour cancellation, store the model. Testable without Celery.

Every write of an attempt is fenced by its attempt number: if the job was handed to another
worker meanwhile (redelivery after a lost worker), this attempt stops without writing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

import backprop
from backprop import DivergenceError, GradientCheckError, SpecError
from service import datasets, inspection, storage, wake
from service.config import Settings
from service.db import session_scope
from service.models import Blob, Dataset, EpochRecord, Job, TrainedModel, new_id, utcnow

from . import observe

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Claim:
    job_id: str
    attempt: int
    spec: dict[str, Any]
    dataset_id: str
    checkpoint_blob_id: str | None
    checkpoint_epoch: int


def _finish(job_id: str, attempt: int, status: str, title: str | None = None,
            detail: str | None = None, **extra: Any) -> bool:
    with session_scope() as s:
        done = s.execute(update(Job).where(Job.id == job_id, Job.attempts == attempt,
                                           Job.status == "running")
                         .values(status=status, error_title=title, error_detail=detail,
                                 finished_at=utcnow(), eta_seconds=None, **extra)).rowcount
        if done:
            _drop_checkpoint(s, job_id)
    wake.notify(job_id)
    return bool(done)


def _drop_checkpoint(s: Any, job_id: str) -> None:
    blob_id = s.scalar(select(Job.checkpoint_blob_id).where(Job.id == job_id))
    if blob_id:
        s.execute(update(Job).where(Job.id == job_id).values(checkpoint_blob_id=None))
        s.execute(delete(Blob).where(Blob.id == blob_id))


def claim(job_id: str, settings: Settings) -> Claim | None:
    """Mark the job running as a new attempt; ``None`` if there is nothing to run."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping the task", job_id)
            return None
        if job.status in FINISHED:
            return None
        now = utcnow()
        if job.cancel_requested:
            s.execute(update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                      .values(status="cancelled", finished_at=now))
            return None
        if job.attempts >= settings.max_attempts:
            s.execute(update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
                      .values(status="failed", finished_at=now,
                              error_title="Too many attempts",
                              error_detail=f"the job was started {job.attempts} times and its "
                              "worker was lost each time (killed, out of memory or over its "
                              "hard time limit); it will not be retried"))
            _drop_checkpoint(s, job_id)
            return None
        attempt = job.attempts + 1
        claimed = s.execute(update(Job).where(Job.id == job_id, Job.attempts == job.attempts,
                                              Job.status.in_(("queued", "running")))
                            .values(status="running", attempts=attempt, heartbeat_at=now,
                                    started_at=job.started_at or now)).rowcount
        if not claimed:
            return None
        # Epochs after the checkpoint were recorded by a lost attempt: they will be redone.
        s.execute(delete(EpochRecord).where(EpochRecord.job_id == job_id,
                                            EpochRecord.epoch > job.checkpoint_epoch))
        inspection.forget_after(s, job_id, job.checkpoint_epoch)
        s.execute(update(Job).where(Job.id == job_id).values(epoch=job.checkpoint_epoch))
        return Claim(job_id, attempt, job.spec, job.dataset_id, job.checkpoint_blob_id,
                     job.checkpoint_epoch)


@dataclass
class Recorder:
    """The training callback: buffers history rows and writes them, the progress, a heartbeat
    and (every N epochs or T seconds) a checkpoint; reads the cancel flag at each write."""

    claim: Claim
    settings: Settings
    epochs: int
    pending: list[dict[str, Any]] = field(default_factory=list)
    diagnostics: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    cancelled: bool = False
    lost: bool = False
    started: float = field(default_factory=time.monotonic)
    last_flush: float = field(default_factory=time.monotonic)
    last_checkpoint: float = field(default_factory=time.monotonic)
    last_checkpoint_epoch: int = 0
    first_epoch: int = 0

    def __post_init__(self) -> None:
        self.last_checkpoint_epoch = self.first_epoch = self.claim.checkpoint_epoch

    def __call__(self, progress: backprop.Progress) -> bool:
        now = time.monotonic()
        checkpoint = None
        if progress.record is not None:
            self.pending.append(progress.record)
            if progress.diagnostics:
                self.diagnostics.append((progress.epoch, progress.diagnostics))
            s = self.settings
            if progress.epoch < progress.epochs and (
                    progress.epoch - self.last_checkpoint_epoch >= s.checkpoint_every_epochs
                    or now - self.last_checkpoint >= s.checkpoint_every_seconds):
                checkpoint = progress.checkpoint()
        if checkpoint is None and now - self.last_flush < self.settings.flush_every_seconds:
            return False
        return self.flush(progress.epoch, checkpoint)

    def flush(self, epoch: int, checkpoint: bytes | None = None) -> bool:
        """Write what is pending; ``True`` means stop (cancelled, or the job was taken over)."""
        now = time.monotonic()
        done = epoch - self.first_epoch
        eta = (now - self.started) / done * (self.epochs - epoch) if done > 0 else None
        values: dict[str, Any] = {"epoch": epoch, "eta_seconds": eta, "heartbeat_at": utcnow()}
        if self.pending:
            last = self.pending[-1]
            values["metrics"] = {k: last[k] for k in ("loss", "val_loss", "accuracy",
                                                      "val_accuracy")}
        c = self.claim
        with session_scope() as s:
            owned = s.execute(update(Job).where(Job.id == c.job_id, Job.attempts == c.attempt,
                                                Job.status == "running").values(**values)
                              ).rowcount
            if not owned:
                self.lost = True
                return True
            if self.pending:
                s.add_all([EpochRecord(job_id=c.job_id, **_clean(r)) for r in self.pending])
                s.add_all(inspection.records(c.job_id, self.diagnostics))
            if checkpoint is not None:
                old = s.scalar(select(Job.checkpoint_blob_id).where(Job.id == c.job_id))
                blob = storage.put(s, checkpoint)
                s.flush()
                s.execute(update(Job).where(Job.id == c.job_id)
                          .values(checkpoint_blob_id=blob.id, checkpoint_epoch=epoch))
                if old:
                    s.execute(delete(Blob).where(Blob.id == old))
            self.cancelled = bool(s.scalar(select(Job.cancel_requested)
                                           .where(Job.id == c.job_id)))
        wake.notify(c.job_id)
        self.pending.clear()
        self.diagnostics.clear()
        self.last_flush = now
        if checkpoint is not None:
            self.last_checkpoint, self.last_checkpoint_epoch = now, epoch
        return self.cancelled


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    def finite(v: Any) -> Any:
        return v if v is None or math.isfinite(v) else None
    return {"epoch": record["epoch"], "loss": record["loss"],
            "val_loss": finite(record["val_loss"]), "accuracy": record["accuracy"],
            "val_accuracy": record["val_accuracy"], "learning_rate": record["learning_rate"],
            "seconds": record["seconds"]}


def _callback_every(spec: dict[str, Any], rows: int) -> int | None:
    t = spec["training"]
    train_rows = rows - round(rows * t["validation_split"])
    bs = train_rows if t["batch_size"] == "full" else t["batch_size"]
    batches = math.ceil(train_rows / bs)
    return max(1, batches // 20) if batches > 20 else None


def run_job(job_id: str, settings: Settings | None = None) -> str | None:
    """Run (or resume) one job to its end. Idempotent: a finished job returns at once.
    Returns the job's final status, or ``None`` when this attempt did not own the job."""
    settings = settings or Settings.from_env()
    c = claim(job_id, settings)
    wake.notify(job_id)
    if c is None:
        return None
    observe.job_started(c.job_id, c.attempt, c.checkpoint_epoch)
    try:
        with session_scope() as s:
            ds = s.get(Dataset, c.dataset_id)
            if ds is None:
                _finish(c.job_id, c.attempt, "failed", "Dataset deleted",
                        f"dataset {c.dataset_id} no longer exists")
                return "failed"
            X, y = datasets.load_arrays(s, ds)
            task, feature_names, rows = ds.task, list(ds.feature_names), ds.rows
            resume = storage.get(s, c.checkpoint_blob_id) if c.checkpoint_blob_id else None
    except DBAPIError:
        raise
    except Exception as exc:
        log.exception("job %s: could not load its data", job_id)
        _finish(c.job_id, c.attempt, "failed", "Could not load the dataset", str(exc))
        return "failed"

    recorder = Recorder(c, settings, c.spec["training"]["epochs"])
    try:
        model = backprop.train(c.spec, X, y, task=task, feature_names=feature_names,
                               callback=recorder, callback_every=_callback_every(c.spec, rows),
                               resume=resume)
    except DivergenceError as exc:
        recorder.flush(exc.epoch - 1)
        with session_scope() as s:
            warnings = inspection.findings(s, c.job_id)
        _finish(c.job_id, c.attempt, "failed", "Training diverged", str(exc), warnings=warnings)
        return "failed"
    except GradientCheckError as exc:
        _finish(c.job_id, c.attempt, "failed", "Gradient check failed", str(exc),
                gradient_check=exc.report)
        return "failed"
    except (SpecError, ValueError) as exc:
        _finish(c.job_id, c.attempt, "failed", "Invalid job", str(exc))
        return "failed"
    except SoftTimeLimitExceeded:
        _finish(c.job_id, c.attempt, "failed", "Time limit exceeded",
                f"the job ran longer than its limit of {settings.task_soft_time_limit:g} s "
                "(TASK_SOFT_TIME_LIMIT); reduce epochs or rows, or raise the limit")
        return "failed"
    except DBAPIError:
        raise  # the database is down: the task retries, the job resumes from its checkpoint
    except Exception as exc:
        log.exception("job %s: training failed", job_id)
        _finish(c.job_id, c.attempt, "failed", "Internal error",
                f"{type(exc).__name__}: {exc}")
        return "failed"

    if recorder.lost:
        return None
    if model.stop_reason == "callback" and recorder.cancelled:
        recorder.flush(len(model.history))
        return "cancelled" if _finish(c.job_id, c.attempt, "cancelled") else None
    if recorder.flush(len(model.history)) and recorder.lost:
        return None
    return _store(c, model, task)


def _store(c: Claim, model: backprop.Model, task: str) -> str | None:
    with session_scope() as s:
        job = s.get(Job, c.job_id)
        model_id = new_id("mdl")
        reports = inspection.reports(s, c.job_id, model)
        owned = s.execute(update(Job).where(Job.id == c.job_id, Job.attempts == c.attempt,
                                            Job.status == "running")
                          .values(status="succeeded", finished_at=utcnow(), eta_seconds=None,
                                  model_id=model_id, metrics=model.metrics, **reports)).rowcount
        if not owned:
            return None
        blob = storage.put(s, model.to_bytes())
        s.flush()
        s.add(TrainedModel(id=model_id, tenant_id=job.tenant_id, job_id=job.id,
                           dataset_id=job.dataset_id, spec=model.spec, inputs=model.n_inputs,
                           outputs=model.n_outputs, task=task, classes=model.classes,
                           feature_names=model.feature_names or [],
                           metrics={**model.metrics, "stop_reason": model.stop_reason},
                           evaluation=model.evaluation, **reports, blob_id=blob.id))
        _drop_checkpoint(s, c.job_id)
    wake.notify(c.job_id)
    return "succeeded"
