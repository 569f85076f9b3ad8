"""Job events as the worker sees them: one log line and the metrics for each.

``job_started`` is called by the runner once an attempt owns the job; ``job_run`` wraps each
task and, when the runner returns, reads the job's row to log and count what really happened:
succeeded, failed (with the failure's title and detail), cancelled, or lost (another attempt
took the job over). Nothing here may fail a task: a database that is down at that moment costs
a log line, not the job.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from service import metrics
from service.db import session_scope
from service.models import Job

log = logging.getLogger("workers.jobs")

FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class _Attempt:
    attempt: int
    from_epoch: int


_running: dict[str, _Attempt] = {}  # job id -> the attempt this process runs


def worker_name() -> str:
    try:
        from celery import current_task

        hostname = current_task.request.hostname if current_task else None
    except Exception:
        hostname = None
    return f"{hostname or socket.gethostname()}/{os.getpid()}"


def _row(job_id: str) -> dict[str, Any] | None:
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            return None
        return {c: getattr(job, c) for c in ("status", "attempts", "epoch", "epochs",
                                             "error_title", "error_detail", "created_at",
                                             "started_at", "finished_at")}


def job_started(job_id: str, attempt: int, from_epoch: int) -> None:
    """This process's attempt ``attempt`` owns the job, resuming after epoch ``from_epoch``."""
    _running[job_id] = _Attempt(attempt, from_epoch)
    fields = {"event": "job.started", "job_id": job_id, "attempt": attempt,
              "worker": worker_name(), "status": "running", "from_epoch": from_epoch}
    try:
        if attempt > 1:
            metrics.JOB_RETRIES.inc()
        else:
            row = _row(job_id)
            if row and row["started_at"] and row["created_at"]:
                wait = (row["started_at"] - row["created_at"]).total_seconds()
                metrics.JOB_QUEUE_WAIT.observe(max(0.0, wait))
                fields["queue_wait_s"] = round(wait, 3)
    except Exception as exc:
        log.warning("job %s: could not record its start: %s", job_id, exc)
    resumed = f" (resuming after epoch {from_epoch})" if from_epoch else ""
    log.info("job %s started, attempt %d%s", job_id, attempt, resumed, extra=fields)


@contextmanager
def job_run(job_id: str) -> Iterator[None]:
    """Around one delivery of the training task of ``job_id``."""
    try:
        before = _row(job_id)
    except Exception:
        before = None
    try:
        yield
    except BaseException:
        _running.pop(job_id, None)
        raise
    mine = _running.pop(job_id, None)
    try:
        _report(job_id, before, mine)
    except Exception as exc:
        log.warning("job %s: could not record how it ended: %s", job_id, exc)


def _report(job_id: str, before: dict[str, Any] | None, mine: _Attempt | None) -> None:
    after = _row(job_id)
    if after is None:
        log.warning("job %s does not exist; its task was dropped", job_id,
                    extra={"event": "job.missing", "job_id": job_id, "worker": worker_name()})
        return
    fields: dict[str, Any] = {"job_id": job_id, "worker": worker_name(),
                              "status": after["status"], "attempt": after["attempts"]}
    if mine is None:  # this delivery ran no attempt
        if before is not None and before["status"] not in FINISHED \
                and after["status"] in FINISHED:  # ...but ended the job before it started
            _finished(job_id, after, fields)
        else:
            log.info("job %s: duplicate delivery, nothing to run (%s, attempt %d)", job_id,
                     after["status"], after["attempts"],
                     extra={**fields, "event": "job.duplicate"})
        return
    fields["attempt"] = mine.attempt
    if after["attempts"] != mine.attempt or after["status"] not in FINISHED:
        log.warning("job %s lost: attempt %d no longer owns it (now %s, attempt %d)", job_id,
                    mine.attempt, after["status"], after["attempts"],
                    extra={**fields, "event": "job.lost", "status": "lost",
                           "job_status": after["status"], "owner_attempt": after["attempts"]})
        return
    epochs = max(0, after["epoch"] - mine.from_epoch)
    metrics.EPOCHS_TRAINED.inc(epochs)
    fields["epochs_trained"] = epochs
    _finished(job_id, after, fields)


def _finished(job_id: str, row: dict[str, Any], fields: dict[str, Any]) -> None:
    status = row["status"]
    duration = None
    if row["finished_at"] and row["started_at"]:
        duration = (row["finished_at"] - row["started_at"]).total_seconds()
        fields["duration_s"] = round(duration, 3)
    metrics.job_finished(status, duration)
    fields.update(event=f"job.{status}", epoch=row["epoch"], epochs=row["epochs"])
    if status == "failed":
        fields.update(title=row["error_title"], detail=row["error_detail"])
        log.warning("job %s failed: %s: %s", job_id, row["error_title"], row["error_detail"],
                    extra=fields)
    else:
        log.info("job %s %s at epoch %d of %d", job_id, status, row["epoch"], row["epochs"],
                 extra=fields)
