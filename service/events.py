"""A job's event stream (server-sent events), read from the same rows as its history.

``event: epoch`` for each history row (``id:`` = the epoch), ``event: status`` when the status
changes (and once at the start), and a last ``event: end`` with the final job. Each poll opens
a short database session; between polls the stream waits on ``wake`` (a Redis nudge, or a short
sleep). Open streams are counted per API key in the database (one cap across every web
process) and per process (so streams never hold all of a process's threads).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import db, jobs, wake
from .config import Settings
from .errors import APIError
from .models import EpochRecord, EventStream, Job, new_id, utcnow

PAGE = 1000  # history rows read per poll (a long history streams in pages)
RETRY_MS = 1000  # the client's reconnection delay

_local = {"open": 0}
_local_lock = threading.Lock()


def stale_after(settings: Settings) -> timedelta:
    """A stream row not refreshed for this long belongs to a process that died."""
    return timedelta(seconds=max(60.0, 3 * settings.stream_keepalive_seconds))


def last_epoch(s: Session, job_id: str) -> int:
    return s.scalar(select(func.max(EpochRecord.epoch)).where(EpochRecord.job_id == job_id)) or 0


def open_stream(key_id: str, job_id: str, settings: Settings) -> str:
    """Count a new stream against its key (429 past the cap) and this process (503)."""
    stream_id = new_id("es")
    cutoff = utcnow() - stale_after(settings)
    with db.session_scope() as s:
        s.execute(delete(EventStream).where(EventStream.seen_at < cutoff))
        s.add(EventStream(id=stream_id, key_id=key_id, job_id=job_id))
    with db.session_scope() as s:  # counted after our own commit: never over the cap
        n = s.scalar(select(func.count()).select_from(EventStream).where(
            EventStream.key_id == key_id, EventStream.seen_at >= cutoff))
    if n > settings.streams_per_key:
        _forget(stream_id)
        raise APIError(429, "Too Many Requests",
                       f"this API key has {settings.streams_per_key} event streams open, "
                       "its limit (STREAMS_PER_KEY); close one (or wait for it to end)",
                       headers={"Retry-After": "5"})
    with _local_lock:
        full = _local["open"] >= settings.streams_per_process
        if not full:
            _local["open"] += 1
    if full:
        _forget(stream_id)
        raise APIError(503, "Service Unavailable",
                       "this server process has as many event streams open as its limit "
                       "(STREAMS_PER_PROCESS); retry shortly", headers={"Retry-After": "5"})
    return stream_id


def _release_local() -> None:
    with _local_lock:
        _local["open"] -= 1


def _forget(stream_id: str) -> None:
    with db.session_scope() as s:
        s.execute(delete(EventStream).where(EventStream.id == stream_id))


def close_stream(stream_id: str) -> None:
    _release_local()
    with contextlib.suppress(Exception):  # database down: the row expires (stale_after)
        _forget(stream_id)


def _touch(stream_id: str) -> None:
    with db.session_scope() as s:
        s.execute(update(EventStream).where(EventStream.id == stream_id)
                  .values(seen_at=utcnow()))


def _event(name: str, data: Any, ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {name}\ndata: {orjson.dumps(data).decode()}\n\n"


def _row(r: EpochRecord, job: Job) -> dict[str, Any]:
    epochs = job.epochs or 1
    return {"epoch": r.epoch, "loss": r.loss, "val_loss": r.val_loss, "accuracy": r.accuracy,
            "val_accuracy": r.val_accuracy, "learning_rate": r.learning_rate,
            "seconds": r.seconds,
            "progress": {"epoch": r.epoch, "epochs": job.epochs, "fraction": r.epoch / epochs,
                         "eta_seconds": jobs.eta_now(job)}}


def stream(job_id: str, after: int, settings: Settings, stream_id: str | None = None,
           ) -> Iterator[str]:
    """The events of ``job_id`` after epoch ``after``, until its end or the stream's time
    limit. The job is read before its rows: a finished job's rows are all committed."""
    started = time.monotonic()
    deadline = started + settings.stream_max_seconds
    keepalive = settings.stream_keepalive_seconds
    next_keepalive = started + keepalive
    status: str | None = None
    yield f"retry: {RETRY_MS}\n\n"
    with wake.Waiter(job_id) as waiter:
        while True:
            waiter.clear()
            with db.session_scope() as s:
                job = s.get(Job, job_id)
                if job is None:  # deleted meanwhile
                    return
                out = jobs.out(job)
                rows = s.scalars(select(EpochRecord).where(
                    EpochRecord.job_id == job_id, EpochRecord.epoch > after)
                    .order_by(EpochRecord.epoch).limit(PAGE)).all()
                chunk = [_event("epoch", _row(r, job), r.epoch) for r in rows]
            if rows:
                after = rows[-1].epoch
                yield "".join(chunk)
            if len(rows) == PAGE:
                continue  # more history waiting: no sleep
            if out["status"] != status:
                if status == "queued" and out["status"] in jobs.FINISHED and out["started_at"]:
                    # it started and ended between two reads: the change to running happened
                    yield _event("status", {**out, "status": "running"}, after)
                status = out["status"]
                yield _event("status", out, after)
            if status in jobs.FINISHED:
                yield _event("end", out, after)
                return
            now = time.monotonic()
            if now >= deadline or wake.stopping.is_set():
                return  # the client reconnects with Last-Event-ID
            if now >= next_keepalive:
                yield ": keepalive\n\n"
                if stream_id is not None:
                    _touch(stream_id)
                next_keepalive = now + keepalive
            waiter.wait(max(0.0, min(deadline, next_keepalive) - now))


class Closing:
    """The response body of a stream: closing it (the client went away, or the stream ended)
    releases its place under the caps, even when it never started."""

    def __init__(self, body: Iterator[str], stream_id: str) -> None:
        self.body, self.stream_id, self.closed = body, stream_id, False

    def __iter__(self) -> Iterator[str]:
        return self.body

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.body.close()  # type: ignore[attr-defined]
            close_stream(self.stream_id)
