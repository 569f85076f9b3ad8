"""Taking a job as a new attempt, and the job's final states.

A delivery of the task is a request to run the job, not proof that nobody runs it: the broker
can deliver twice (redelivery, a reaper's re-send). So a claim takes a job that is queued, or
running with a holder that is gone (its heartbeat is stale, or it is a process of this machine
that no longer exists); a running job whose holder is alive is left alone and the duplicate is
dropped (if that holder dies later, its heartbeat goes stale and the reaper sends the job again).

Every change is a conditional update fenced by the attempt number, and the checkpoint is read
under the claim (in the claim's transaction, after its update), so no other attempt can move or
delete it meanwhile. Whenever a job reaches a final state its checkpoint blob is deleted.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service import inspection, storage, wake
from service.config import Settings
from service.db import session_scope
from service.models import Blob, EpochRecord, Job, utcnow

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "failed", "cancelled")
HOST = socket.gethostname()
running_here: set[str] = set()  # jobs this process is running now


def worker_id() -> str:
    return f"{HOST}:{os.getpid()}"


@dataclass
class Claim:
    job_id: str
    attempt: int
    spec: dict[str, Any]
    dataset_id: str
    checkpoint: bytes | None
    checkpoint_epoch: int
    tenant_id: str


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child that its parent has not reaped yet is a zombie: gone too
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def holder_alive(job: Job, stale_before: datetime) -> bool:
    """Whether the attempt that holds this running job may still be running it."""
    if job.heartbeat_at is None or job.heartbeat_at < stale_before:
        return False
    host, _, pid = (job.worker_id or "").rpartition(":")
    if host != HOST or not pid.isdigit():
        return True  # another machine with a fresh heartbeat: trust it
    if int(pid) == os.getpid():
        return job.id in running_here  # an earlier attempt in this process has ended
    return not _process_gone(int(pid))


def drop_checkpoint(s: Session, job_id: str, blob_id: str | None = None) -> None:
    """Delete the job's checkpoint blob (``blob_id`` when the caller has just read it)."""
    blob_id = blob_id or s.scalar(select(Job.checkpoint_blob_id).where(Job.id == job_id))
    if blob_id:
        s.execute(update(Job).where(Job.id == job_id).values(checkpoint_blob_id=None))
        s.execute(delete(Blob).where(Blob.id == blob_id))


def finish(job_id: str, attempt: int, status: str, title: str | None = None,
           detail: str | None = None, **extra: Any) -> bool:
    """End a running attempt in a final state (fenced); ``False`` if it no longer owned it."""
    with session_scope() as s:
        done = s.execute(update(Job).where(Job.id == job_id, Job.attempts == attempt,
                                           Job.status == "running")
                         .values(status=status, error_title=title, error_detail=detail,
                                 finished_at=utcnow(), eta_seconds=None, **extra)).rowcount
        if done:
            drop_checkpoint(s, job_id)
    wake.notify(job_id)
    return bool(done)


def give_up(s: Session, job: Job, status: str, **values: Any) -> bool:
    """End a job that no attempt is running (queued, or its holder is gone), fenced on what was
    read; drops its checkpoint."""
    done = s.execute(update(Job).where(Job.id == job.id, Job.attempts == job.attempts,
                                       Job.status == job.status)
                     .values(status=status, finished_at=utcnow(), eta_seconds=None,
                             **values)).rowcount
    if done:
        drop_checkpoint(s, job.id)
    return bool(done)


def too_many_attempts(attempts: int) -> dict[str, str]:
    return {"error_title": "Too many attempts",
            "error_detail": f"the job was started {attempts} times and its worker was lost "
                            "each time (killed, out of memory or over its hard time limit); it "
                            "will not be retried"}


def claim(job_id: str, settings: Settings) -> Claim | None:
    """Mark the job running as a new attempt; ``None`` if there is nothing to run."""
    with session_scope() as s:
        job = s.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping the task", job_id)
            return None
        if job.status in FINISHED:
            if job.checkpoint_blob_id:  # ended by a path that left it behind
                drop_checkpoint(s, job_id)
            return None
        now = utcnow()
        stale_before = now - timedelta(seconds=settings.heartbeat_timeout_seconds)
        if job.status == "running" and holder_alive(job, stale_before):
            log.warning("job %s is running at %s; dropping the duplicate delivery", job_id,
                        job.worker_id)
            return None
        if job.cancel_requested:
            give_up(s, job, "cancelled")
            return None
        if job.attempts >= settings.max_attempts:
            give_up(s, job, "failed", **too_many_attempts(job.attempts))
            return None
        fence = [Job.id == job_id, Job.attempts == job.attempts, Job.status == job.status]
        if job.status == "running":  # the holder is gone, and still gone at the update
            if job.heartbeat_at is None:
                fence.append(Job.heartbeat_at.is_(None))
            elif job.heartbeat_at < stale_before:
                fence.append(Job.heartbeat_at < stale_before)
            else:  # a process of this machine that no longer exists
                fence.append(Job.worker_id == job.worker_id)
        attempt = job.attempts + 1
        claimed = s.execute(update(Job).where(*fence).values(
            status="running", attempts=attempt, heartbeat_at=now, worker_id=worker_id(),
            started_at=job.started_at or now)).rowcount
        if not claimed:
            return None
        if job.attempts == 0:  # the first attempt (fenced on it): no checkpoint, no rows yet
            return Claim(job_id, attempt, job.spec, job.dataset_id, None, 0, job.tenant_id)
        # Under the claim: no other attempt can move or delete the checkpoint from here on.
        blob_id, epoch = s.execute(select(Job.checkpoint_blob_id, Job.checkpoint_epoch)
                                   .where(Job.id == job_id)).one()
        checkpoint = storage.get(s, blob_id) if blob_id else None
        # Epochs after the checkpoint were recorded by a lost attempt: they will be redone.
        s.execute(delete(EpochRecord).where(EpochRecord.job_id == job_id,
                                            EpochRecord.epoch > epoch))
        inspection.forget_after(s, job_id, epoch)
        s.execute(update(Job).where(Job.id == job_id).values(epoch=epoch))
        return Claim(job_id, attempt, job.spec, job.dataset_id, checkpoint, epoch, job.tenant_id)
