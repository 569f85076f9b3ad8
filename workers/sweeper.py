"""The worker side of sweeps: advance a sweep when one of its trials ends, and every sweep on
each periodic pass (pruning, trials whose end no worker saw, cancels). Each advance is fenced
in the database (``service.sweeps.advance``), so many workers doing this never act twice."""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy import select, update

from service import db, sweeps
from service.config import Settings
from service.models import Job, Sweep, utcnow
from service.queue import send_training

log = logging.getLogger(__name__)


def _advance(app: Celery, settings: Settings, sweep_id: str) -> int:
    with db.session_scope() as s:
        new = sweeps.advance(s, sweep_id, settings.limits)
    for job_id in new:
        try:
            send_training(app, job_id)
        except Exception as exc:  # the reaper sends what stays in the outbox
            log.warning("sweep %s: broker unreachable, trial %s stays in the outbox: %s",
                        sweep_id, job_id, exc)
            continue
        with db.session_scope() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.enqueued_at.is_(None))
                      .values(enqueued_at=utcnow()))
    if new:
        log.info("sweep %s: started trials %s", sweep_id, ", ".join(new))
    return len(new)


def advance_for_job(app: Celery, settings: Settings, job_id: str) -> int:
    """After ``job_id`` ended: the next decisions of its sweep, if it is a trial."""
    with db.session_scope() as s:
        sweep_id = s.scalar(select(Job.sweep_id).where(Job.id == job_id))
    return _advance(app, settings, sweep_id) if sweep_id else 0


def advance_all(app: Celery, settings: Settings) -> int:
    """One pass over every running sweep; returns the number of trials started."""
    with db.session_scope() as s:
        ids = s.scalars(select(Sweep.id).where(Sweep.status == "running")).all()
    started = 0
    for sweep_id in ids:
        try:
            started += _advance(app, settings, sweep_id)
        except Exception:
            log.exception("sweep %s: advance failed", sweep_id)
    return started
