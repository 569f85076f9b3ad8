"""A job's event stream (server-sent events), read from the same rows as its history.

``event: epoch`` for each history row (``id: N``, the epoch), after it ``event: diagnostics``
when the job recorded per-layer diagnostics at that epoch (``id: N.d``), ``event: status`` when
the status changes (and once at the start), and a last ``event: end`` with the final job. A
resume after ``id: N`` replays epoch N's diagnostics (that row was the last event seen), after
``N.d`` or ``?after=N`` it does not. A job's diagnostics rows are committed with (or before)
their epoch's row, so the diagnostics read up to the last row of a poll are all there.

Each poll opens a short database session; between polls the stream waits on ``wake`` (a Redis
nudge, or a short sleep). Open streams are counted per API key in the database (one cap across
every web process) and per process (so streams never hold all of a process's threads).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import continuation, db, inspection, jobs, wake
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


@dataclass(frozen=True)
class Resume:
    """Where a stream starts: after epoch ``epoch``'s row, and after its diagnostics too unless
    ``row_only`` (the last event seen was that row)."""

    epoch: int = 0
    row_only: bool = False

    @classmethod
    def parse(cls, event_id: str) -> Resume | None:
        """``N`` or ``N.d`` (an id of this stream); ``None`` for anything else."""
        head, dot, tail = event_id.strip().partition(".")
        if not head.isdigit() or len(head) > 10 or (dot and tail != "d"):
            return None
        return cls(int(head), row_only=not dot)

    @property
    def diagnostics_after(self) -> int:
        return self.epoch - 1 if self.row_only else self.epoch


def last_epoch(s: Session, job_id: str) -> int:
    return s.scalar(select(func.max(EpochRecord.epoch)).where(EpochRecord.job_id == job_id)) or 0


def nothing_after(s: Session, job_id: str, resume: Resume) -> bool:
    """A finished job's stream has no event after ``resume`` (a reconnect after its end)."""
    return resume.epoch >= last_epoch(s, job_id) and not inspection.pending(
        s, job_id, resume.diagnostics_after, resume.epoch)


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


def _event(name: str, data: Any, ident: int | str | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {name}\ndata: {orjson.dumps(data).decode()}\n\n"


def _row(r: EpochRecord, job: Job) -> dict[str, Any]:
    return {"epoch": r.epoch, "loss": r.loss, "val_loss": r.val_loss, "accuracy": r.accuracy,
            "val_accuracy": r.val_accuracy, "learning_rate": r.learning_rate,
            "seconds": r.seconds,
            "progress": {"epoch": r.epoch, "epochs": job.epochs,
                         "fraction": continuation.fraction(job.spec, r.epoch, job.epochs),
                         "eta_seconds": jobs.eta_now(job)}}


def _diagnosing(job: Job) -> bool:
    return bool((job.spec.get("training") or {}).get("diagnostics"))


def _chunk(rows: Sequence[EpochRecord], diagnostics: list[dict[str, Any]], job: Job) -> str:
    """The events of a poll in stream order: each epoch's row, then its diagnostics."""
    events = [(r.epoch, 0, _event("epoch", _row(r, job), r.epoch)) for r in rows]
    events += [(d["epoch"], 1, _event("diagnostics", d, f"{d['epoch']}.d"))
               for d in diagnostics]
    return "".join(text for *_, text in sorted(events, key=lambda e: e[:2]))


def _ident(after: int, diagnosing: bool) -> str:
    """The id that status and end events carry: everything up to epoch ``after`` was sent."""
    return f"{after}.d" if diagnosing and after > 0 else str(after)


def stream(job_id: str, resume: Resume, settings: Settings, stream_id: str | None = None,
           ) -> Iterator[str]:
    """The events of ``job_id`` after ``resume``, until its end or the stream's time limit.
    The job is read before its rows: a finished job's rows are all committed. A poll is two
    queries (the job, a page of rows) and a third for a job that records diagnostics (those
    of the page's epochs)."""
    after, diag_after = resume.epoch, resume.diagnostics_after
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
                out, diagnosing = jobs.out(job), _diagnosing(job)
                rows = s.scalars(select(EpochRecord).where(
                    EpochRecord.job_id == job_id, EpochRecord.epoch > after)
                    .order_by(EpochRecord.epoch).limit(PAGE)).all()
                upto = rows[-1].epoch if rows else after
                diagnostics = inspection.between(s, job_id, diag_after, upto) \
                    if diagnosing and upto > diag_after else []
                chunk = _chunk(rows, diagnostics, job)
            after = diag_after = upto
            if chunk:
                yield chunk
            ident = _ident(after, diagnosing)
            if len(rows) == PAGE:
                continue  # more history waiting: no sleep
            if out["status"] != status:
                if status == "queued" and out["status"] in jobs.FINISHED and out["started_at"]:
                    # it started and ended between two reads: the change to running happened
                    yield _event("status", {**out, "status": "running"}, ident)
                status = out["status"]
                yield _event("status", out, ident)
            if status in jobs.FINISHED:
                yield _event("end", out, ident)
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
