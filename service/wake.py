"""Waking event streams when a job changes: a Redis pub/sub nudge when Redis is configured,
else a short sleep. Never a source of data: a woken stream reads the history rows again.

Writers call ``notify(job_id)`` after the commit that changed the job. Readers hold a
``Waiter`` for the stream's lifetime: ``clear()`` before reading the database, then
``wait(timeout)``, so a notification that lands between the read and the wait is not lost.
One listener thread per process (pattern subscription) sets the waiters' events.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "bp:job:"
# Without Redis a stream polls the database this often (the embedded stack's latency bound).
POLL_SECONDS = 0.2

_lock = threading.Lock()
_state: dict[str, Any] = {"url": None, "pid": None, "client": None, "thread": None}
_waiters: dict[str, set[threading.Event]] = {}
stopping = threading.Event()  # set at shutdown: streams end so the process can exit


def redis_url_from(redis_url: str, broker_url: str) -> str:
    """The Redis to use: ``REDIS_URL``, else the broker when it is Redis, else none."""
    if redis_url:
        return redis_url
    return broker_url if broker_url.startswith(("redis://", "rediss://")) else ""


def configure(url: str | None) -> None:
    """Use the Redis at ``url`` (empty: none) in this process."""
    with _lock:
        _state.update(url=url or "", client=None, thread=None, pid=os.getpid())


def _url() -> str:
    if _state["url"] is None:  # not configured (a worker process): from the environment
        configure(redis_url_from(os.environ.get("REDIS_URL", ""),
                                 os.environ.get("BROKER_URL", "")))
    return _state["url"]


def _client() -> Any:
    if _state["pid"] != os.getpid():  # forked: connections and threads are not inherited
        configure(_state["url"])
    if not _url():
        return None
    if _state["client"] is None:
        import redis

        _state["client"] = redis.Redis.from_url(_url(), socket_timeout=2,
                                                socket_connect_timeout=2)
    return _state["client"]


def enabled() -> bool:
    return bool(_url())


def notify(job_id: str) -> None:
    """Tell the streams of ``job_id`` to read again. Best effort: they poll anyway."""
    try:
        client = _client()
        if client is not None:
            client.publish(CHANNEL + job_id, b"1")
    except Exception as exc:  # Redis down: streams fall back to their poll interval
        log.debug("wake.notify(%s) failed: %s", job_id, exc)


def _current(url: str, pid: int) -> bool:
    """Still this process's listener for ``url`` (not reconfigured, not shutting down)."""
    return not stopping.is_set() and _state["url"] == url and _state["pid"] == pid


def _listen(url: str) -> None:
    pid = os.getpid()
    while _current(url, pid):
        try:
            client = _client()
            if client is None:
                return
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.psubscribe(CHANNEL + "*")
            while _current(url, pid):
                msg = pubsub.get_message(timeout=1.0)
                if msg and msg["type"] == "pmessage":
                    job_id = msg["channel"].decode()[len(CHANNEL):]
                    with _lock:
                        events = list(_waiters.get(job_id, ()))
                    for event in events:
                        event.set()
            pubsub.close()
        except Exception as exc:
            log.warning("wake: Redis pub/sub lost (%s); streams poll until it is back", exc)
            time.sleep(2.0)


def _ensure_listener() -> None:
    if _client() is None:
        return
    with _lock:
        thread = _state["thread"]
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=_listen, args=(_state["url"],),
                                      name="wake-listener", daemon=True)
            _state["thread"] = thread
            thread.start()


class Waiter:
    """Waits for a change to one job; a context manager that registers it while open."""

    def __init__(self, job_id: str) -> None:
        self.job_id, self.event = job_id, threading.Event()

    def __enter__(self) -> Waiter:
        with _lock:
            _waiters.setdefault(self.job_id, set()).add(self.event)
        _ensure_listener()
        return self

    def __exit__(self, *_: object) -> None:
        with _lock:
            events = _waiters.get(self.job_id)
            if events is not None:
                events.discard(self.event)
                if not events:
                    del _waiters[self.job_id]

    def clear(self) -> None:
        self.event.clear()

    def wait(self, timeout: float) -> None:
        """Until a notification, ``timeout`` or shutdown; polls often when there is no Redis
        (and at least every second when there is, should a notification be lost)."""
        limit = min(timeout, 1.0 if enabled() else POLL_SECONDS)
        if not stopping.is_set():
            self.event.wait(limit)


def shutdown() -> None:
    """End every stream of this process (gunicorn worker exit)."""
    stopping.set()
    with _lock:
        events = [e for group in _waiters.values() for e in group]
    for event in events:
        event.set()
