"""What a running job writes: history rows, progress, ETA, heartbeat and checkpoints.

The training callback (on the training thread) only queues: each epoch's row (the compiled
kernel calls back once per group of epochs, with the group's rows) and, by cadence, a
checkpoint; it reads two flags. A writer thread per job commits, every tick, in one
transaction fenced by the attempt number: the heartbeat, the progress and ETA, the queued rows
(``COPY`` on PostgreSQL) and the newest queued checkpoint; the same update returns the cancel
flag. It also wakes when 500 rows wait, so that fast epochs are written while training goes on,
not all at the end. It beats whether or not an epoch has ended, so a long epoch never looks like
a dead worker; when the fence fails (the job was taken over, or ended) it tells the training to
stop. When training ends the writer is closed and the runner writes what is left in the
transaction that ends the job (``flush(session)``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

import backprop
from service import inspection, storage, wake
from service.config import Settings
from service.db import session_scope
from service.models import Blob, Job, utcnow

from .claim import Claim

log = logging.getLogger(__name__)

JOBS = Job.__table__
BATCH_ROWS = 500  # rows queued that wake the writer before its tick
METRICS = ("loss", "val_loss", "accuracy", "val_accuracy")


@dataclass
class Checkpoint:
    epoch: int
    data: bytes


@dataclass
class Diagnostics:
    epoch: int
    layers: list[dict[str, Any]]


def _finite(v: Any) -> Any:
    return v if v is None or math.isfinite(v) else None


COLUMNS = ("job_id", "epoch", "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
           "seconds")


def history_row(job_id: str, r: dict[str, Any]) -> tuple[Any, ...]:
    return (job_id, r["epoch"], r["loss"], _finite(r["val_loss"]), r["accuracy"],
            r["val_accuracy"], r["learning_rate"], r["seconds"])


def insert_history(s: Any, rows: list[tuple[Any, ...]]) -> None:
    """Many rows in one go on the session's connection: ``COPY`` on PostgreSQL (a 3,000-row
    batch in a few ms, where an ``executemany`` took ~100), ``executemany`` on SQLite."""
    conn = s.connection()
    raw = conn.connection.dbapi_connection
    cur = raw.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cur.copy(f"COPY history ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(COLUMNS))
            cur.executemany(f"INSERT INTO history ({', '.join(COLUMNS)}) VALUES ({marks})",
                            rows)
    finally:
        cur.close()


class Recorder:
    """The training callback of one attempt, and its writer thread (``start``/``close``)."""

    def __init__(self, claim: Claim, settings: Settings) -> None:
        self.claim, self.settings = claim, settings
        self.epochs: int = claim.spec["training"]["epochs"]
        self.items: deque[dict[str, Any] | Checkpoint | Diagnostics] = deque()
        self.cancelled = self.lost = self.timed_out = False
        # The time limit, kept cooperatively a little before Celery's soft limit would interrupt
        # training mid-step: the run stops at an epoch's (or a batch's) end, its model kept.
        limit = settings.task_soft_time_limit
        self.deadline = time.monotonic() + limit - min(30.0, max(0.1, 0.05 * limit))
        self.written_epoch = claim.checkpoint_epoch
        # Progress in epochs (fractional between batches) and when it was reached, and the
        # point the rate is measured from: the ETA is the remaining epochs at that rate. The
        # origin is the first call (what came before it is start-up: the first epoch's
        # buffers and fresh memory); until a second call, the first call's own rows give it.
        self.position: tuple[float, float] | None = None
        self.origin: tuple[float, float] | None = None
        self.calls = 0
        self.last_checkpoint = (claim.checkpoint_epoch, time.monotonic())
        self.checkpoint_queued = False
        self.lock = threading.Lock()
        self._stop, self._wake = threading.Event(), threading.Event()
        tick = min(settings.flush_every_seconds, settings.heartbeat_timeout_seconds / 4)
        self._thread = threading.Thread(target=self._beat, args=(max(0.01, tick),),
                                        daemon=True, name=f"writer-{claim.job_id}")

    # -- the training thread ---------------------------------------------------------------

    def __call__(self, progress: backprop.Progress) -> bool:
        now = time.monotonic()
        rows = progress.rows or []
        if rows:
            self.advance(float(progress.epoch), now, sum(r["seconds"] for r in rows), len(rows))
        else:  # between batches
            self.advance(progress.epoch + (progress.batch or 0) / progress.batches, now)
            return self._stopping(now)
        if progress.diagnostics:  # before its row: never committed after it (event streams)
            self.items.append(Diagnostics(progress.epoch, progress.diagnostics))
        self.items.extend(rows)  # after the position: a flush that writes them has an ETA
        if len(self.items) >= BATCH_ROWS:  # fast epochs: write while training goes on
            self._wake.set()
        s, (last_epoch, last_time) = self.settings, self.last_checkpoint
        if progress.epoch < progress.epochs and not self.checkpoint_queued and (
                (s.checkpoint_every_epochs
                 and progress.epoch - last_epoch >= s.checkpoint_every_epochs)
                or now - last_time >= s.checkpoint_every_seconds):
            self.checkpoint_queued = True
            self.last_checkpoint = (progress.epoch, now)
            self.items.append(Checkpoint(progress.epoch, progress.checkpoint()))
        return self._stopping(now)

    def _stopping(self, now: float) -> bool:
        if now >= self.deadline:
            self.timed_out = True
        return self.cancelled or self.lost or self.timed_out

    def advance(self, at: float, now: float, seconds: float | None = None,
                epochs: int = 0) -> None:
        """Training reached epoch ``at`` at ``now`` (monotonic); ``seconds`` is what the
        ``epochs`` rows it brought took, if it brought any."""
        self.calls += 1
        if self.calls == 1 and seconds is not None:
            self.origin = (at - epochs, now - seconds)
        elif self.calls == 2:
            self.origin = self.position
        self.position = (at, now)

    # -- the writer thread -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self, tick: float) -> None:
        while not self.lost:
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.flush()
            except DBAPIError as exc:  # kept queued; the next tick tries again
                log.warning("job %s: could not write progress (%s); retrying",
                            self.claim.job_id, exc)
            except Exception:
                log.exception("job %s: writer failed", self.claim.job_id)

    def eta(self, now: float) -> float | None:
        if self.position is None or self.origin is None:
            return None
        (at, when), (at0, when0) = self.position, self.origin
        if at <= at0:
            return None
        remaining = (self.epochs - at) * (when - when0) / (at - at0) - (now - when)
        return max(0.0, remaining)

    def flush(self, session: Any = None) -> bool:
        """Commit what is queued, the progress and a heartbeat (fenced) and read the cancel
        flag; ``True`` means stop (cancelled, or the job is no longer this attempt's). Raises
        ``DBAPIError`` with the items still queued. With ``session`` (the transaction that
        ends the job, after ``close``) it writes there, for that session's commit, and skips a
        queued checkpoint (the job's end drops it)."""
        c = self.claim
        with self.lock:
            items = [self.items.popleft() for _ in range(len(self.items))]
            rows = [i for i in items if isinstance(i, dict)]
            checkpoint = None if session is not None else \
                next((i for i in reversed(items) if isinstance(i, Checkpoint)), None)
            diagnostics = [(i.epoch, i.layers) for i in items if isinstance(i, Diagnostics)]
            values: dict[str, Any] = {"heartbeat_at": utcnow(),
                                      "eta_seconds": self.eta(time.monotonic())}
            if rows:
                values["epoch"] = rows[-1]["epoch"]
                values["metrics"] = {k: _finite(rows[-1][k]) for k in METRICS}
            try:
                if session is not None:
                    cancel = self._write(session, rows, diagnostics, checkpoint, values)
                else:
                    with session_scope() as s:
                        cancel = self._write(s, rows, diagnostics, checkpoint, values)
            except BaseException:
                self.items.extendleft(reversed(items))
                raise
            if cancel is None:
                self.lost = True
                return True
            if rows and session is None:  # committed: the history up to here is readable
                wake.notify(c.job_id)  # event streams read the new rows now
            self.cancelled = bool(cancel)
            if rows:
                self.written_epoch = rows[-1]["epoch"]
            if checkpoint is not None:
                self.checkpoint_queued = False
        return self.cancelled

    def _write(self, s: Any, rows: list[dict[str, Any]], diagnostics: list[Any],
               checkpoint: Checkpoint | None, values: dict[str, Any]) -> bool | None:
        """The flush's statements; the cancel flag, or ``None`` when the fence failed."""
        c = self.claim
        cancel = s.execute(update(JOBS).where(
            JOBS.c.id == c.job_id, JOBS.c.attempts == c.attempt,
            JOBS.c.status == "running").values(**values)
            .returning(JOBS.c.cancel_requested)).scalar()
        if cancel is None:
            return None
        if rows:
            insert_history(s, [history_row(c.job_id, r) for r in rows])
        if diagnostics:
            s.add_all(inspection.records(c.job_id, diagnostics))
        if checkpoint is not None:
            _write_checkpoint(s, c.job_id, checkpoint)
        return bool(cancel)


def _write_checkpoint(s: Any, job_id: str, checkpoint: Checkpoint) -> None:
    """The new checkpoint replaces the old in the same transaction as the rows up to it."""
    old = s.scalar(select(JOBS.c.checkpoint_blob_id).where(JOBS.c.id == job_id))
    blob = storage.put(s, checkpoint.data)
    s.flush()
    s.execute(update(JOBS).where(JOBS.c.id == job_id)
              .values(checkpoint_blob_id=blob.id, checkpoint_epoch=checkpoint.epoch))
    if old:
        s.execute(delete(Blob).where(Blob.id == old))
