"""The reaper: a periodic pass (a thread in each worker's main process) that makes sure every
job accepted either runs or ends with a reason, whatever the broker forgot. Each pass:

1. sends the outbox: jobs accepted while the broker was down (never sent);
2. takes back running jobs whose heartbeat stopped (their worker or machine died): queued
   again and sent, or ended when cancelled meanwhile or out of attempts;
3. re-sends queued jobs whose message the broker lost. It compares the broker's own count of
   waiting messages (kombu's passive ``queue_declare``, the same on Redis, the filesystem
   transport and AMQP) with the jobs the database says are waiting; when fewer messages than
   jobs were waiting at two passes in a row, the jobs that were waiting at both are sent
   again. Duplicates are harmless (a claim drops a delivery for a job that is running or
   done), and this adds at most one message per waiting job per loss, never one per pass, so
   a long legitimate backlog does not multiply;
4. deletes the checkpoints of jobs that ended by a path that left one behind.

Every decision is a conditional update, so two reapers never act twice on one job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError
from sqlalchemy import func, or_, select, update

from service import db
from service.config import Settings
from service.models import Job, utcnow
from service.queue import QUEUE, send_training

from .claim import FINISHED, drop_checkpoint, give_up, too_many_attempts

log = logging.getLogger(__name__)


def waiting_messages(app: Celery) -> int:
    """Messages waiting in the training queue, as the broker counts them."""
    with app.connection_for_write() as conn:
        try:
            ok = conn.default_channel.queue_declare(queue=QUEUE, passive=True)
        except ChannelError as exc:  # Redis keeps no empty list: an empty queue "is not"
            if "NOT_FOUND" in str(exc):
                return 0
            raise
        return int(ok.message_count)


class Reaper:
    def __init__(self, settings: Settings, app: Celery) -> None:
        self.settings, self.app = settings, app
        self.short_since: datetime | None = None  # when the broker first held too few

    def run_once(self) -> dict[str, int]:
        out = {"sent": self._send_outbox(), "requeued": 0, "ended": 0, "resent": 0,
               "checkpoints": self._sweep_checkpoints()}
        out["requeued"], out["ended"] = self._take_back_stale()
        out["resent"] = self._resend_lost()
        return out

    def _send(self, job_id: str, before: datetime | None) -> bool:
        """Send once: whichever reaper moves ``enqueued_at`` (unset, or older than ``before``)
        to now sends it."""
        with db.session_scope() as s:
            fence = Job.enqueued_at.is_(None) if before is None else Job.enqueued_at < before
            if not s.execute(update(Job).where(Job.id == job_id, Job.status == "queued", fence)
                             .values(enqueued_at=utcnow())).rowcount:
                return False
        try:
            send_training(self.app, job_id)
        except Exception:
            with db.session_scope() as s:  # still to send: back to the outbox
                s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                          .values(enqueued_at=None))
            raise
        return True

    def _send_outbox(self) -> int:
        with db.session_scope() as s:
            outbox = s.scalars(select(Job.id).where(Job.status == "queued",
                                                    Job.enqueued_at.is_(None))).all()
        sent = 0
        for job_id in outbox:
            try:
                sent += self._send(job_id, None)
            except Exception as exc:
                log.warning("reaper: broker still unreachable: %s", exc)
                break
        return sent

    def _take_back_stale(self) -> tuple[int, int]:
        stale = utcnow() - timedelta(seconds=self.settings.heartbeat_timeout_seconds)
        lost = or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < stale)
        requeued = ended = 0
        with db.session_scope() as s:
            jobs = s.scalars(select(Job).where(Job.status == "running", lost)).all()
        for job in jobs:
            with db.session_scope() as s:
                if job.cancel_requested or job.attempts >= self.settings.max_attempts:
                    values = {} if job.cancel_requested else too_many_attempts(job.attempts)
                    ended += give_up(s, job, "cancelled" if job.cancel_requested else "failed",
                                     **values)
                    continue
                taken = s.execute(update(Job).where(
                    Job.id == job.id, Job.status == "running", Job.attempts == job.attempts,
                    lost).values(status="queued", eta_seconds=None,
                                 enqueued_at=None)).rowcount
            if taken:
                log.warning("reaper: job %s lost its worker %s; sending it again", job.id,
                            job.worker_id)
                requeued += 1
                try:
                    self._send(job.id, None)
                except Exception as exc:  # in the outbox: the next pass sends it
                    log.warning("reaper: broker unreachable: %s", exc)
        return requeued, ended

    def _resend_lost(self) -> int:
        now = utcnow()
        with db.session_scope() as s:
            expected = s.scalar(select(func.count()).select_from(Job).where(
                Job.status == "queued", Job.enqueued_at.is_not(None)))
        if not expected:
            self.short_since = None
            return 0
        try:
            present = waiting_messages(self.app)
        except Exception as exc:
            log.warning("reaper: cannot count the broker's messages: %s", exc)
            return 0
        if present >= expected:
            self.short_since = None
            return 0
        if self.short_since is None:  # maybe one is being delivered right now: look again
            self.short_since = now
            return 0
        since, self.short_since = self.short_since, None
        with db.session_scope() as s:
            lost = s.scalars(select(Job.id).where(Job.status == "queued",
                                                  Job.enqueued_at < since)).all()
        log.warning("reaper: the broker holds %d messages for %d waiting jobs; sending %d "
                    "again", present, expected, len(lost))
        resent = 0
        for job_id in lost:
            try:
                resent += self._send(job_id, since)
            except Exception as exc:
                log.warning("reaper: broker unreachable: %s", exc)
                break
        return resent

    def _sweep_checkpoints(self) -> int:
        with db.session_scope() as s:
            ids = s.scalars(select(Job.id).where(Job.status.in_(FINISHED),
                                                 Job.checkpoint_blob_id.is_not(None))).all()
            for job_id in ids:
                drop_checkpoint(s, job_id)
        return len(ids)


def reap_once(settings: Settings, app: Celery, reaper: Any = None) -> dict[str, int]:
    """One pass (a fresh reaper forgets what an earlier pass saw of the broker)."""
    return (reaper or Reaper(settings, app)).run_once()
