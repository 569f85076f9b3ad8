"""``/v1/jobs``: start training, poll, read the history, cancel, list."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import db, jobs
from ..models import EpochRecord, Job
from ..schemas import (
    HistoryPage,
    HistoryQuery,
    IdempotencyHeader,
    JobCreate,
    JobListQuery,
    JobOut,
    JobPage,
    JobPath,
    Problem,
)
from .common import accepts, blueprint, newest_first, owned, page, settings, tenant

bp = blueprint("jobs", "jobs", "Train networks asynchronously and follow their progress.")


@bp.post("/jobs", operation_id="create_job", summary="Start a training job",
         responses={202: JobOut, 200: JobOut, 400: Problem})
def create_job(body: JobCreate, header: IdempotencyHeader) -> Any:
    """Start a training job. With `Idempotency-Key`, a retry within 24 h returns the first job
    (`200`) instead of starting another."""
    s = db.request_session()
    job, created = jobs.create(s, tenant(), body, settings().limits, header.idempotency_key)
    try:
        s.commit()  # commit first...
    except IntegrityError:  # the same Idempotency-Key, committed by a concurrent request
        s.rollback()
        job, created = jobs.create(s, tenant(), body, settings().limits,
                                   header.idempotency_key)
        if created:
            raise

    headers = {"Location": url_for(".get_job", job_id=job.id)}
    if not created:
        return jobs.out(job), 200, {**headers, "Idempotent-Replayed": "true"}
    jobs.enqueue(s, current_app.extensions["celery"], job)  # ...then enqueue, the id only
    return jobs.out(job), 202, headers


@bp.get("/jobs", operation_id="list_jobs", summary="List training jobs", responses={200: JobPage})
def list_jobs(query: JobListQuery) -> Any:
    """Jobs of this tenant, newest first; `?status=running` filters."""
    filters = [Job.status == query.status] if query.status else []
    return newest_first(Job, query, jobs.out, *filters)


@bp.get("/jobs/<job_id>", operation_id="get_job", summary="Get a training job",
        responses={200: JobOut})
def get_job(path: JobPath) -> Any:
    return jobs.out(owned(Job, path.job_id, "job"))




@bp.get("/jobs/<job_id>/history", operation_id="get_job_history", summary="Job history by epoch",
        responses={200: HistoryPage})
def get_history(path: JobPath, query: HistoryQuery) -> Any:
    """One row per finished epoch. `order=asc` (default) from the first epoch, `order=desc`
    from the newest; `cursor` is an epoch number (a `next_cursor`): the page holds the epochs
    after it (`asc`) or before it (`desc`)."""
    job = owned(Job, path.job_id, "job")
    stmt = select(EpochRecord).where(EpochRecord.job_id == job.id)
    if query.cursor is not None:  # plain ASCII digits, checked by the schema
        at = int(query.cursor)
        stmt = stmt.where(EpochRecord.epoch < at if query.order == "desc"
                          else EpochRecord.epoch > at)
    order = EpochRecord.epoch.desc() if query.order == "desc" else EpochRecord.epoch
    rows = db.request_session().scalars(stmt.order_by(order).limit(query.limit + 1)).all()
    items = [{"epoch": r.epoch, "loss": r.loss, "val_loss": r.val_loss, "accuracy": r.accuracy,
              "val_accuracy": r.val_accuracy, "learning_rate": r.learning_rate,
              "seconds": r.seconds} for r in rows]
    return page(items, query.limit, lambda item: item["epoch"])


@bp.post("/jobs/<job_id>/cancel", operation_id="cancel_job", summary="Cancel a training job",
         responses={202: JobOut, 409: Problem})
@accepts()
def cancel_job(path: JobPath) -> Any:
    """Cancel: a queued job never starts; a running one stops within one epoch."""
    s = db.request_session()
    job = owned(Job, path.job_id, "job")
    jobs.cancel(s, job)
    return jobs.out(job), 202
