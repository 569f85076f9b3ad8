"""Running one training job: claim it, load the dataset, train with a recorder that writes
progress, history, heartbeats and checkpoints, honour cancellation, store the model. Testable
without Celery.

Every write of an attempt is fenced by its attempt number: if the job was handed to another
attempt meanwhile, this one stops without writing. Status changes commit in ``claim.finish``
(failed, cancelled) and ``_store`` (succeeded: the last history rows, the model and the status
in one transaction); history commits in ``Recorder.flush``.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from itertools import pairwise
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

import backprop
from backprop import DivergenceError, GradientCheckError, SpecError
from service import datasets, inspection, storage, wake
from service.config import Settings
from service.db import session_scope
from service.models import Dataset, Job, TrainedModel, new_id, utcnow

from . import observe
from .claim import Claim, claim, drop_checkpoint, finish, running_here
from .recorder import Recorder

log = logging.getLogger(__name__)
JOBS = Job.__table__

# Datasets never change once stored: a worker keeps the last few it trained on, so a job on
# the same data (a sweep, a retrain) does not read and parse the blob again.
# The compiled kernel runs groups of epochs of about this much training between callbacks (at
# its multi-epoch speed): progress moves, and a cancel is seen, at least this often.
CALLBACK_SECONDS = 0.1

_datasets: OrderedDict[str, tuple[int, Any, Any]] = OrderedDict()


def _dataset(s: Any, ds: Dataset, budget: int) -> tuple[Any, Any]:
    key = f"{ds.id}:{ds.sha256}"
    if key in _datasets:
        _datasets.move_to_end(key)
        return _datasets[key][1:]
    X, y = datasets.load_arrays(s, ds)
    size = X.nbytes + (y.nbytes if hasattr(y, "nbytes") else 64 * len(y))
    if size <= budget:
        X.flags.writeable = False
        while _datasets and sum(v[0] for v in _datasets.values()) + size > budget:
            _datasets.popitem(last=False)
        _datasets[key] = (size, X, y)
    return X, y


def _callback_every(spec: dict[str, Any], rows: int, features: int) -> int | None:
    """Between-batch callbacks (so that a cancel is seen within an epoch) only where an epoch
    may take longer than ~0.5 s (by its multiply-adds at a slow core's 2 GFLOP/s): elsewhere a
    callback per epoch is enough, and cheaper."""
    t = spec["training"]
    train_rows = rows - round(rows * t["validation_split"])
    bs = train_rows if t["batch_size"] == "full" else t["batch_size"]
    batches = math.ceil(train_rows / bs)
    units = [features, *(layer["units"] for layer in spec["network"]["layers"])]
    seconds = 6 * sum(a * b for a, b in pairwise(units)) * train_rows / 2e9
    if batches < 2 or seconds < 0.5:
        return None
    return max(1, int(batches * 0.25 / seconds))


def run_job(job_id: str, settings: Settings | None = None) -> str | None:
    """Run (or resume) one job to its end. Idempotent: a finished job returns at once.
    Returns the job's final status, or ``None`` when this attempt did not own the job."""
    settings = settings or Settings.from_env()
    c = claim(job_id, settings)
    wake.notify(job_id)
    if c is None:
        return None
    observe.job_started(c.job_id, c.attempt, c.checkpoint_epoch)
    running_here.add(job_id)
    recorder = Recorder(c, settings)
    recorder.start()  # heartbeats from now on, through the data load and every epoch
    try:
        return _run(c, settings, recorder)
    finally:
        recorder.close()
        running_here.discard(job_id)


def _run(c: Claim, settings: Settings, recorder: Recorder) -> str | None:
    try:
        with session_scope() as s:
            ds = s.get(Dataset, c.dataset_id)
            if ds is None:
                return _failed(c, "Dataset deleted", f"dataset {c.dataset_id} no longer exists")
            X, y = _dataset(s, ds, settings.dataset_cache_bytes)
            task, feature_names, rows, features = (ds.task, list(ds.feature_names), ds.rows,
                                                   ds.features)
    except DBAPIError:
        raise
    except Exception as exc:
        log.exception("job %s: could not load its data", c.job_id)
        return _failed(c, "Could not load the dataset", str(exc))

    try:
        model = backprop.train(c.spec, X, y, task=task, feature_names=feature_names,
                               callback=recorder,
                               callback_every=_callback_every(c.spec, rows, features),
                               callback_seconds=CALLBACK_SECONDS,
                               resume=c.checkpoint)
    except DivergenceError as exc:
        recorder.flush()
        with session_scope() as s:
            warnings = inspection.findings(s, c.job_id)
        return _failed(c, "Training diverged", str(exc), warnings=warnings)
    except GradientCheckError as exc:
        return _failed(c, "Gradient check failed", str(exc), gradient_check=exc.report)
    except (SpecError, ValueError) as exc:
        return _failed(c, "Invalid job", str(exc))
    except SoftTimeLimitExceeded:
        recorder.flush()
        return _failed(c, "Time limit exceeded",
                       f"the job ran longer than its limit of {settings.task_soft_time_limit:g} "
                       "s (TASK_SOFT_TIME_LIMIT); reduce epochs or rows, or raise the limit")
    except DBAPIError:
        raise  # the database is down: the task retries, the job resumes from its checkpoint
    except Exception as exc:
        log.exception("job %s: training failed", c.job_id)
        return _failed(c, "Internal error", f"{type(exc).__name__}: {exc}")

    recorder.close()  # no more ticks: what is still queued is written by this thread
    if model.stop_reason == "callback" or recorder.lost:
        if recorder.lost or (recorder.flush() and recorder.lost):
            return None
        if recorder.cancelled:
            return "cancelled" if finish(c.job_id, c.attempt, "cancelled") else None
    return _store(c, model, task, recorder)


def _failed(c: Claim, title: str, detail: str, **extra: Any) -> str | None:
    return "failed" if finish(c.job_id, c.attempt, "failed", title, detail, **extra) else None


def _store(c: Claim, model: backprop.Model, task: str, recorder: Recorder) -> str | None:
    """One transaction ends the job: the last history rows and progress, the model, then the
    job's success (fenced). ``finished_at`` is taken once the model's bytes are written, just
    before the commit that shows them all."""
    data = model.to_bytes()  # before the transaction: no write lock held while it serialises
    with session_scope() as s:
        if recorder.flush(s) and recorder.lost:
            s.rollback()
            return None
        model_id = new_id("mdl")
        reports = inspection.reports(s, c.job_id, model, whole_run=c.checkpoint is None)
        blob = storage.put(s, data)
        s.flush()
        s.add(TrainedModel(id=model_id, tenant_id=c.tenant_id, job_id=c.job_id,
                           dataset_id=c.dataset_id, spec=model.spec, inputs=model.n_inputs,
                           outputs=model.n_outputs, task=task, classes=model.classes,
                           feature_names=model.feature_names or [],
                           metrics={**model.metrics, "stop_reason": model.stop_reason},
                           evaluation=model.evaluation, **reports, blob_id=blob.id))
        s.flush()
        owned = s.execute(update(JOBS).where(JOBS.c.id == c.job_id,
                                             JOBS.c.attempts == c.attempt,
                                             JOBS.c.status == "running")
                          .values(status="succeeded", finished_at=utcnow(), eta_seconds=None,
                                  model_id=model_id, metrics=model.metrics, **reports)
                          .returning(JOBS.c.checkpoint_blob_id)).first()
        if owned is None:  # another attempt has the job: nothing of this one is kept
            s.rollback()
            return None
        if owned.checkpoint_blob_id:
            drop_checkpoint(s, c.job_id, owned.checkpoint_blob_id)
    wake.notify(c.job_id)
    return "succeeded"
