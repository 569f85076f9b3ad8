"""Running one training job: claim it, load the dataset, train with a recorder that writes
progress, history, heartbeats and checkpoints, honour cancellation, store the model. Testable
without Celery.

Every write of an attempt is fenced by its attempt number: if the job was handed to another
attempt meanwhile, this one stops without writing. Status changes commit in ``claim.finish``
(failed) and ``store.store`` (the last history rows, the model and the status in one
transaction: succeeded, or cancelled / stopped at the time limit with a partial model); history
commits in ``Recorder.flush``. A ``continue_from`` job trains its source model further.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from itertools import pairwise
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import DBAPIError

import backprop
from backprop import DivergenceError, GradientCheckError, SpecError
from service import datasets, inspection, storage, wake
from service.config import Settings
from service.db import session_scope
from service.models import Dataset, Job, TrainedModel

from . import observe
from .claim import Claim, claim, finish, running_here
from .recorder import Recorder
from .store import store

log = logging.getLogger(__name__)
JOBS = Job.__table__

# The compiled kernel runs groups of epochs of about this much training between callbacks (at
# its multi-epoch speed): progress moves, and a cancel is seen, at least this often.
CALLBACK_SECONDS = 0.1

# Datasets never change once stored: a worker keeps the last few it trained on, so a job on
# the same data (a sweep, a retrain) does not read and parse the blob again.
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
            source, same_data = _source(s, c)
    except DBAPIError:
        raise
    except Exception as exc:
        log.exception("job %s: could not load its data", c.job_id)
        return _failed(c, "Could not load the dataset", str(exc))
    if source is None and "continue_from" in c.spec:
        return _failed(c, "Model to continue from deleted", f"model "
                       f"{c.spec['continue_from']['model_id']} or its training state no longer "
                       "exists")

    try:
        model = backprop.train({"network": c.spec["network"], "training": c.spec["training"]},
                               X, y, task=task, feature_names=feature_names,
                               callback=recorder,
                               callback_every=_callback_every(c.spec, rows, features),
                               callback_seconds=CALLBACK_SECONDS,
                               resume=c.checkpoint, continue_from=source, same_data=same_data)
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
    if recorder.lost:
        return None
    ending = "succeeded"
    if model.stop_reason == "callback":  # stopped from outside: it keeps a partial model
        ending = "cancelled" if recorder.cancelled else "time_limit"
    return store(c, model, task, recorder, ending, settings.task_soft_time_limit)


def _failed(c: Claim, title: str, detail: str, **extra: Any) -> str | None:
    return "failed" if finish(c.job_id, c.attempt, "failed", title, detail, **extra) else None


def _source(s: Any, c: Claim) -> tuple[backprop.Model | None, bool]:
    """The model a ``continue_from`` job trains further, with its training state, and whether
    this job trains on the rows it was trained on; ``(None, True)`` for any other job."""
    ref = c.spec.get("continue_from")
    row = s.get(TrainedModel, ref["model_id"]) if ref else None
    if row is None or row.state_blob_id is None:
        return None, True
    model = backprop.Model.from_bytes(storage.get(s, row.blob_id))
    model.training_state = storage.get(s, row.state_blob_id)
    return model, row.dataset_id == c.dataset_id
