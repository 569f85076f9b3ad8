"""Rate limits on ``/v1``: one budget per tenant (authenticated), one per client address (not).

The budget (``RATE_LIMIT``, e.g. ``1200 per minute``, a fixed window) is counted with the
``limits`` library in a store every web process shares: Redis when ``REDIS_URL`` is set
(docker-compose), else a small SQLite file under ``DATA_DIR`` (``make run``), so the limit is
one limit per key whatever the number of gunicorn processes.

The check runs after authentication (``common.blueprint``), so ``Bearer KEY``, ``bearer KEY``
and ``Bearer  KEY`` are one tenant and one budget, and a request without a valid key counts
against its address (random keys do not buy fresh budgets).

Blocks: a busy key takes its hits from the store in blocks (one ``INCRBY n`` for the next n
requests of this process), so a request under load rarely waits for the store. A block holds
only hits the store has counted in the current window and is dropped when that window ends, so
the limit is never exceeded. A block doubles (1, 2, 4, ... up to ``LEASE_MAX``, and at most
1/``LEASE_SHARE`` of the budget left) only when the last one was used up within
``LEASE_SECONDS`` of being taken; otherwise the next is 1 hit. A key seen now and then, or close
to its limit, takes one hit per round trip, exactly; what a process can hold unserved while
another is refused is its current block. ``X-RateLimit-Remaining`` is this process's view.
While one thread takes a key's next block, the others of the process that find the block empty
wait for it (``REFILL_WAIT_SECONDS`` at most) rather than each asking the store too.

The store is not worth an outage: when it is unreachable the request is let through (fail
open), the error is counted in ``ratelimit_store_errors_total``, logged once per outage, and
``/readyz`` names it. After a failure the store is left alone for ``RETRY_SECONDS`` so that a
dead Redis does not add a connection timeout to every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse
from prometheus_client import Counter

from .config import Settings
from .errors import APIError
from .ratelimit_stores import CountingStore, RedisCounters, SqliteStorage

log = logging.getLogger(__name__)

STORE_ERRORS = Counter("ratelimit_store_errors", "Rate-limit checks let through because the "
                       "rate limiter's store (Redis, or the SQLite file) was unreachable")
RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.5
LEASE_SECONDS = 0.25  # a block used up faster than this: the next one is twice as big
LEASE_MAX = 32
LEASE_SHARE = 32  # a block is at most 1/LEASE_SHARE of the budget left in the window
# A thread that finds the block empty while another thread of the process is taking the next
# one waits up to this long for it instead of asking the store too.
REFILL_WAIT_SECONDS = 0.05
MAX_LEASES = 4096  # keys with a block held, per process (more: the lapsed ones are dropped)


@dataclass
class _Lease:
    """Hits of one key that the store has counted for this process, not yet served."""

    left: int = 0
    number: int = 0  # the store's count for the last hit served from this block
    until: float = 0.0  # time.monotonic(): the end of the block's window
    size: int = 1  # of the block
    taken: float = 0.0  # time.monotonic() when it was taken


class RateLimiter:
    """``RATE_LIMIT`` per key over the shared store, failing open when the store is down."""

    def __init__(self, limit: str, storage: CountingStore, store_name: str) -> None:
        self.item: RateLimitItem = parse(limit)
        self.storage, self.store_name = storage, store_name
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}
        self._refills: dict[str, threading.Event] = {}  # key -> a block being taken
        self.clock = time.monotonic  # of the blocks and the outage pause (tests move it)

    def hit(self, key: str) -> dict[str, str]:
        """Count one request for ``key``: the rate-limit headers, or a 429 problem."""
        now = self.clock()
        if now < self._down_until:
            STORE_ERRORS.inc()
            return {}
        with self._lock:
            served = self._serve(key, now)
            refill = self._refills.get(key)
        if served is None and refill is not None and refill.wait(REFILL_WAIT_SECONDS):
            with self._lock:  # another thread of this process was taking a block: share it
                served = self._serve(key, self.clock())
        if served is not None:
            return served
        with self._lock:
            size = self._next_size(self._leases.get(key), now)
            mine = None
            if key not in self._refills:  # the others wait for the refill this thread makes
                mine = self._refills[key] = threading.Event()
        try:
            return self._take(key, now, size)
        finally:
            if mine is not None:
                with self._lock:
                    del self._refills[key]
                mine.set()

    def _serve(self, key: str, now: float) -> dict[str, str] | None:
        """A hit from this process's block for ``key``, if one is left (under ``_lock``)."""
        lease = self._leases.get(key)
        if lease is not None and lease.left > 0 and now < lease.until:
            lease.left -= 1
            lease.number += 1
            return self._headers(lease.number)
        return None

    def _take(self, key: str, now: float, size: int) -> dict[str, str]:
        """Count a block of ``size`` hits in the store; serve the first, keep the rest."""
        try:
            name = self.item.key_for("v1", key)
            count, seconds_left = self.storage.count(name, self.item.get_expiry(), size)
        except Exception as exc:  # redis and sqlite raise several kinds of connection errors
            self._failed(exc)
            return {}
        self._recovered()
        first = count - size + 1  # the store's count for the first hit of this block
        allowed = min(size, self.item.amount - first + 1)
        if allowed <= 0:
            with self._lock:
                self._leases.pop(key, None)
            retry = max(1, math.ceil(seconds_left))
            raise APIError(429, "Too Many Requests",
                           f"rate limit exceeded ({self.item}); retry after the number of "
                           "seconds in Retry-After (RATE_LIMIT)",
                           headers={"Retry-After": str(retry),
                                    "X-RateLimit-Limit": str(self.item.amount),
                                    "X-RateLimit-Remaining": "0"})
        self._keep(key, _Lease(allowed - 1, first, now + seconds_left, size, now))
        return self._headers(first)

    def _next_size(self, lease: _Lease | None, now: float) -> int:
        """Twice the last block if it was used up within ``LEASE_SECONDS``, else 1."""
        if lease is None or now >= lease.until or now - lease.taken > LEASE_SECONDS:
            return 1
        budget = (self.item.amount - lease.number) // LEASE_SHARE
        return max(1, min(lease.size * 2, LEASE_MAX, budget))

    def _keep(self, key: str, lease: _Lease) -> None:
        with self._lock:
            old = self._leases.get(key)
            if old is not None and old.left > 0 and lease.taken < old.until:
                # threads that found the block empty at once each took one: keep all the hits
                lease.left += old.left
                lease.number = max(lease.number, old.number)
            if old is None and len(self._leases) >= MAX_LEASES:
                for k in [k for k, v in self._leases.items() if v.until <= lease.taken]:
                    del self._leases[k]
                if len(self._leases) >= MAX_LEASES:
                    self._leases.clear()
            self._leases[key] = lease

    def _headers(self, number: int) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.item.amount),
                "X-RateLimit-Remaining": str(max(0, self.item.amount - number))}

    def _failed(self, exc: Exception) -> None:
        STORE_ERRORS.inc()
        with self._lock:
            first = self._down_until == 0.0
            self._down_until = self.clock() + RETRY_SECONDS
        if first:
            log.warning("rate limiter store (%s) unreachable, letting requests through "
                        "unlimited until it is back: %s: %s", self.store_name,
                        type(exc).__name__, exc)

    def _recovered(self) -> None:
        if self._down_until:
            with self._lock:
                self._down_until = 0.0
            log.warning("rate limiter store (%s) is reachable again; limits apply",
                        self.store_name)

    def status(self) -> str:
        """``ok``, or why the store cannot be used (for ``/readyz``)."""
        try:
            if not self.storage.check():
                return "unreachable (requests are not rate limited)"
            return "ok"
        except Exception as exc:
            return f"unreachable: {type(exc).__name__} (requests are not rate limited)"


def make_limiter(settings: Settings) -> RateLimiter | None:
    if not settings.rate_limit:
        return None
    if settings.redis_url:
        storage: CountingStore = RedisCounters(settings.redis_url,
                                               socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                                               socket_timeout=REDIS_TIMEOUT_SECONDS)
        return RateLimiter(settings.rate_limit, storage, "redis")
    path = Path(settings.data_dir).resolve() / "ratelimit.sqlite"
    return RateLimiter(settings.rate_limit, SqliteStorage(path=str(path)), "sqlite")


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["ratelimit"] = make_limiter(settings)

    @app.after_request
    def _headers(resp: Response) -> Response:
        for name, value in g.get("ratelimit_headers", {}).items():
            resp.headers.setdefault(name, value)
        return resp


def limit(tenant_id: str | None) -> None:
    """Count this request against its tenant (``None``: its client address); 429 when over."""
    limiter: RateLimiter | None = current_app.extensions.get("ratelimit")
    if limiter is None:
        return
    key = f"tenant:{tenant_id}" if tenant_id else f"addr:{request.remote_addr or 'unknown'}"
    g.ratelimit_headers = limiter.hit(key)


def readiness() -> dict[str, str]:
    """The store's state for ``/readyz`` (absent when rate limiting is off)."""
    limiter: RateLimiter | None = current_app.extensions.get("ratelimit")
    return {} if limiter is None else {"rate_limit_store": limiter.status()}
