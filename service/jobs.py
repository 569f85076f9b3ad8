"""Training jobs: creation (spec checks, limits, idempotency), cancellation, serialisation."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

import orjson
from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backprop import count_parameters, estimate_training_memory, largest_batch, resolve_spec
from backprop.spec import resolve_network

from . import continuation, datasets, metrics, wake
from .config import Limits
from .errors import APIError, invalid
from .models import Dataset, Job, TrainedModel, new_id, utcnow
from .queue import send_training
from .schemas import JobCreate

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
FINISHED = ("succeeded", "failed", "cancelled")


def _request_hash(body: JobCreate) -> str:
    return hashlib.sha256(orjson.dumps(body.model_dump(mode="json"),
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_limits(spec: dict[str, Any], ds: Dataset, limits: Limits) -> None:
    layers = spec["network"]["layers"]
    if len(layers) > limits.max_layers:
        raise invalid(["network", "layers"], f"{len(layers)} layers is more than the limit of "
                      f"{limits.max_layers} (MAX_LAYERS)")
    for i, layer in enumerate(layers):
        if layer["units"] > limits.max_units:
            raise invalid(["network", "layers", i, "units"], f"{layer['units']} units is more "
                          f"than the limit of {limits.max_units} (MAX_UNITS)")
    params = count_parameters(ds.features, [layer["units"] for layer in layers])
    if params > limits.max_parameters:
        raise invalid(["network", "layers"], f"the network has {params} parameters, more than "
                      f"the limit of {limits.max_parameters} (MAX_PARAMETERS)")
    training = spec["training"]
    if training["epochs"] > limits.max_epochs:
        raise invalid(["training", "epochs"], f"{training['epochs']} epochs is more than the "
                      f"limit of {limits.max_epochs} (MAX_EPOCHS)")
    n_val = round(ds.rows * training["validation_split"])
    if training["validation_split"] > 0 and (n_val < 1 or ds.rows - n_val < 1):
        raise invalid(["training", "validation_split"], f"{training['validation_split']} of "
                      f"{ds.rows} rows leaves no {'validation' if n_val < 1 else 'training'} rows")
    diagnostics = training.get("diagnostics")
    if diagnostics and (rows := training["epochs"] // diagnostics["every"] * len(layers)) \
            > limits.max_diagnostic_rows:
        raise invalid(["training", "diagnostics", "every"], f"{rows} diagnostics rows (epochs / "
                      f"every x layers) is more than the limit of {limits.max_diagnostic_rows} "
                      "(MAX_DIAGNOSTIC_ROWS); record them less often")
    work = training["epochs"] * (ds.rows - n_val)
    if work > limits.max_epoch_rows:
        raise invalid(["training", "epochs"], f"epochs x training rows = {work} is more than the "
                      f"limit of {limits.max_epoch_rows} (MAX_EPOCH_ROWS)")
    check_memory(spec, ds.rows, limits.max_training_memory_bytes)


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_memory(spec: dict[str, Any], rows: int, budget: int) -> None:
    """Refuse a job whose estimated peak training memory is over ``budget`` (422), naming the
    part that takes most and what to change."""
    parts = estimate_training_memory(spec, rows)
    total = parts.pop("total")
    if not budget or total <= budget:
        return
    worst = max(parts, key=parts.__getitem__)
    training = spec["training"]
    if worst == "batch_buffers":
        loc: list[str | int] = ["training", "batch_size"]
        fits = largest_batch(spec, rows, budget)
        change = (f"use a batch_size of at most {fits} rows" if fits else
                  "use a smaller batch_size") + " (or fewer or narrower layers)"
    elif worst == "validation_pass":
        loc, change = ["training", "validation_split"], "use a smaller validation_split"
    elif worst in ("parameters", "checkpoint"):
        loc, change = ["network", "layers"], "use fewer or narrower layers"
    else:
        loc = ["training", "dtype"] if training["dtype"] == "float64" else ["dataset_id"]
        change = ("train in float32" if training["dtype"] == "float64" else
                  "use a dataset with fewer rows or columns")
    named = ", ".join(f"{k.replace('_', ' ')} {_size(v)}" for k, v in
                      sorted(parts.items(), key=lambda kv: -kv[1]) if v)
    raise invalid(loc, f"training this job needs about {_size(total)} of memory ({named}), "
                  f"more than the budget of {_size(budget)} (MAX_TRAINING_MEMORY_BYTES); "
                  f"{change}")


def resolved_spec(body: JobCreate, ds: Dataset, limits: Limits,
                  source: TrainedModel | None = None) -> dict[str, Any]:
    """The job's full spec on ``ds`` (every default filled in), within the limits; raises the
    ``SpecError`` or problem a bad spec gets. ``source``: the model it continues from."""
    if source is None:
        _need_network(body)
        return _within_limits(resolve_spec(body.engine_spec(), n_inputs=ds.features,
                                           n_outputs=ds.outputs, task=ds.task, n_rows=ds.rows),
                              ds, limits)
    continuation.check_data(ds, source)
    merged = continuation.engine_spec(body, source)
    outputs = continuation.n_outputs(source)
    # the architecture first: a changed output layer is named as such, not by the loss it breaks
    continuation.check({"network": resolve_network(merged["network"], n_inputs=ds.features,
                                                   n_outputs=outputs, task=ds.task),
                        "training": merged["training"]}, source)
    spec = resolve_spec(merged, n_inputs=ds.features, n_outputs=outputs, task=ds.task,
                        n_rows=ds.rows)
    return continuation.record(_within_limits(spec, ds, limits), source)


def _need_network(body: JobCreate) -> None:
    if body.network is None and body.continue_from is None:
        raise invalid(["network"], "Field required (or 'continue_from' a model)")


def _within_limits(spec: dict[str, Any], ds: Dataset, limits: Limits) -> dict[str, Any]:
    check_limits(spec, ds, limits)
    return spec


def find_idempotent(s: Session, tenant_id: str, key: str, body: JobCreate) -> Job | None:
    job = s.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))
    if job is None:
        return None
    if job.created_at < utcnow() - IDEMPOTENCY_WINDOW:
        job.idempotency_key = None  # expired: the key is free again
        s.flush()
        return None
    if job.request_hash != _request_hash(body):
        raise APIError(422, "Idempotency-Key reused",
                       "this Idempotency-Key was used within 24 h with a different body; "
                       "use a new key for a different job",
                       errors=[{"loc": ["header", "Idempotency-Key"],
                                "msg": "reused with a different body"}])
    return job


def create(s: Session, tenant_id: str, body: JobCreate, limits: Limits,
           idempotency_key: str | None) -> tuple[Job, bool]:
    """Make the job row (and the inline dataset). Returns ``(job, created)``."""
    if idempotency_key:
        existing = find_idempotent(s, tenant_id, idempotency_key, body)
        if existing is not None:
            return existing, False
    _need_network(body)
    source = None if body.continue_from is None else \
        continuation.source(s, tenant_id, body.continue_from.model_id)
    if body.dataset is not None:
        try:
            ds = datasets.store(s, tenant_id, datasets.from_json(body.dataset, limits))
        except APIError as exc:
            for err in exc.errors or []:
                if exc.status == 422 and err["loc"] and exc.detail.startswith(
                        ".".join(str(p) for p in err["loc"]) + ":"):
                    exc.detail = f"dataset.{exc.detail}"  # the detail names the same field
                err["loc"] = ["dataset", *err["loc"]]
            raise
        s.flush()
    elif body.dataset_id is None and source is not None:  # the model's own dataset
        ds = s.get(Dataset, source.dataset_id)
        if ds is None or ds.tenant_id != tenant_id:
            raise invalid(["dataset_id"], f"the dataset of model {source.id} "
                          f"({source.dataset_id}) no longer exists; give a dataset_id")
    else:
        ds = s.get(Dataset, body.dataset_id)
        if ds is None or ds.tenant_id != tenant_id:
            raise invalid(["dataset_id"], f"no dataset with id {body.dataset_id!r}")
    spec = resolved_spec(body, ds, limits, source)
    job = Job(id=new_id("job"), tenant_id=tenant_id, dataset_id=ds.id, status="queued",
              spec=spec, epochs=continuation.total_epochs(spec),
              epoch=continuation.start_epoch(spec),
              parent_model_id=source.id if source is not None else None,
              idempotency_key=idempotency_key,
              request_hash=_request_hash(body) if idempotency_key else None)
    s.add(job)
    return job, True


def enqueue(s: Session, celery: Celery, job: Job) -> bool:
    """Send the (committed) job to the broker and record that it was sent. A broker that is
    down leaves the job in the outbox (``enqueued_at`` empty) for the reaper to send later."""
    try:
        send_training(celery, job.id)
    except Exception as exc:  # kombu raises several kinds of connection errors
        log.warning("broker unreachable, job %s stays in the outbox: %s", job.id, exc)
        return False
    s.execute(update(Job).where(Job.id == job.id, Job.enqueued_at.is_(None))
              .values(enqueued_at=utcnow()))
    s.commit()
    return True


def request_cancel(s: Session, job: Job) -> None:
    """Cancel a queued job at once, flag a running one (its worker stops within an epoch).
    One statement each, guarded by status, so a worker finishing at the same moment wins
    cleanly. Does not commit."""
    queued = s.execute(update(Job).where(Job.id == job.id, Job.status == "queued")
                       .values(status="cancelled", cancel_requested=True,
                               finished_at=utcnow())).rowcount
    if queued:
        metrics.job_finished("cancelled")
    else:
        s.execute(update(Job).where(Job.id == job.id, Job.status == "running")
                  .values(cancel_requested=True))


def cancel(s: Session, job: Job) -> None:
    if job.status in FINISHED:
        raise APIError(409, "Conflict", f"job {job.id} has already finished ({job.status})")
    request_cancel(s, job)
    s.commit()
    wake.notify(job.id)
    s.refresh(job)


def eta_now(job: Job) -> float | None:
    """A running job's ETA as of now: what its worker wrote at its last beat, less the time
    since that beat (the worker writes every ``FLUSH_EVERY_SECONDS``; a poll in between would
    otherwise see the ETA stand still)."""
    if job.status != "running" or job.eta_seconds is None:
        return None
    since = (utcnow() - job.heartbeat_at).total_seconds() if job.heartbeat_at else 0.0
    return max(0.0, job.eta_seconds - max(0.0, since))


def out(job: Job) -> dict[str, Any]:
    error = {"title": job.error_title, "detail": job.error_detail or ""} \
        if job.error_title else None
    done = continuation.fraction(job.spec, job.epoch, job.epochs)
    return {
        "id": job.id,
        "status": job.status,
        "dataset_id": job.dataset_id,
        "spec": job.spec,
        "progress": {"epoch": job.epoch, "epochs": job.epochs,
                     "fraction": 1.0 if job.status == "succeeded" else done,
                     "eta_seconds": eta_now(job)},
        "metrics": job.metrics,
        "model_id": job.model_id,
        "parent_model_id": job.parent_model_id,
        "error": error,
        "attempts": job.attempts,
        "gradient_check": job.gradient_check,
        "warnings": job.warnings or [],
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
