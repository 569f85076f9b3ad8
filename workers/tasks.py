"""Celery tasks: thin adapters around the runner. Start a worker with
``celery -A workers.tasks worker -Q training --concurrency 1``.

Each worker process gets its own database engine (made lazily per pid) and a BLAS thread count
such that processes x threads <= cores. The worker's main process runs the reaper
(``workers.reaper``): every job accepted runs or ends with a reason, whatever the broker forgot.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import Any

from celery import Celery, signals
from sqlalchemy.exc import DBAPIError

from backprop import kernels
from service import db
from service.config import Settings
from service.queue import TRAIN_TASK, make_celery

from . import observe, ops, reaper, runner, sweeper  # noqa: F401 - ops: logs, beats, metrics

log = logging.getLogger(__name__)

settings = Settings.from_env()
celery = make_celery(settings)


@celery.task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None)
def train(self: Any, job_id: str) -> None:
    """Train one job (idempotent: a finished job returns at once). While the database is
    unreachable the task is retried with backoff; the job resumes from its checkpoint."""
    try:
        with observe.job_run(job_id):  # logs and counts how the job really ended
            runner.run_job(job_id, settings)
    except DBAPIError as exc:
        log.warning("job %s: database unreachable (%s); retrying", job_id, exc)
        raise self.retry(exc=exc, countdown=min(60, 2 ** min(self.request.retries, 6))) \
            from None
    try:
        sweeper.advance_for_job(celery, settings, job_id)  # a sweep's next trials, if any
    except Exception:  # the periodic pass advances it later
        log.exception("job %s: could not advance its sweep", job_id)


def _blas_threads() -> int:
    configured = int(os.environ.get("BLAS_THREADS") or 0)  # 0: cores / processes
    if configured > 0:
        return configured
    concurrency = int(os.environ.get("WORKER_CONCURRENCY") or celery.conf.worker_concurrency
                      or os.cpu_count() or 1)
    return max(1, (os.cpu_count() or 1) // max(1, concurrency))


@signals.worker_process_init.connect
def _init_process(**_: Any) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(_blas_threads())
    db.configure(settings.database_url)
    kernels.warm_up(settings.data_dir / "numba-cache")  # compiled kernel: in a thread, no wait
    # The loaded modules live as long as the process: out of the garbage collector's sight, so
    # that a full collection during training walks what the job made, not ~100,000 more objects.
    gc.collect()
    gc.freeze()


def reap_once(cfg: Settings = settings, app: Celery = celery) -> dict[str, int]:
    """One reaper pass (see ``workers.reaper``)."""
    return reaper.reap_once(cfg, app)


def _reaper_loop(stop: threading.Event, interval: float) -> None:
    db.configure(settings.database_url)
    passes = reaper.Reaper(settings, celery)  # remembers what the last pass saw of the broker
    while not stop.wait(interval):
        try:
            passes.run_once()
            sweeper.advance_all(celery, settings)
        except Exception:
            log.exception("reaper pass failed")


_stop = threading.Event()


@signals.worker_ready.connect
def _start_reaper(**_: Any) -> None:
    interval = float(os.environ.get("REAPER_INTERVAL_SECONDS") or 10)
    if interval <= 0:  # at scale a few workers reap for all (every decision is fenced)
        return
    threading.Thread(target=_reaper_loop, args=(_stop, interval), daemon=True,
                     name="reaper").start()


@signals.worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    _stop.set()
