"""What the database said about a key, trusted for a bounded time in one web process.

``TrustCache`` keeps each value with the moment the database confirmed it and serves it for
``ttl`` after that, never longer: a change made elsewhere (a key revoked, a model deleted by
another process) is seen here within ``ttl``.

Under load an entry does not lapse. The first request that finds it past half its ``ttl`` has it
looked up again, while the requests beside it go on with the value they have; so a busy key costs
one lookup per ``ttl / 2`` per process. Given a ``refresh`` (a lookup that any thread may run),
that lookup runs on the process's refresher thread and the request is served at once: a busy
key's requests make no database round trip. (One refresher thread serves every cache of the
process; should it fall behind by half a ``ttl``, entries lapse and are looked up by requests,
as without it.) A key not cached, or lapsed, is looked up by one thread
at a time: the others that want it at that moment wait for that answer (up to ``WAIT_SECONDS``,
then they ask themselves) instead of asking too.
(Without this, every expiry sent each thread in flight to the database at once, each holding a
pooled connection, and the overflow connections opened for them stalled a loaded process for
tens of milliseconds, once a second.)

A lookup answers the value, or ``None`` for "not there" (dropped, not kept: a key created a
moment ago works at once). A lookup that fails (raises) changes nothing: a request that needed
the answer gets the error; one that was only refreshing a still-trusted value is served it.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)

WAIT_SECONDS = 1.0  # the longest a request waits for another thread's lookup of its key


class KeyLocks(Generic[K]):
    """One lock per key, made when a thread first wants it and let go when no thread holds or
    awaits it (so one lookup, or one load, of a key at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[K, tuple[threading.Lock, int]] = {}  # key -> (lock, threads using it)

    @contextmanager
    def hold(self, key: K, blocking: bool = True, timeout: float = -1) -> Iterator[bool]:
        """Hold ``key``'s lock for the block; yields ``False`` (holding nothing) when another
        thread holds it: at once with ``blocking=False``, after ``timeout`` seconds if given."""
        with self._lock:
            lock, users = self._locks.get(key) or (threading.Lock(), 0)
            self._locks[key] = (lock, users + 1)
        held = lock.acquire(blocking, timeout if blocking else -1)
        try:
            yield held
        finally:
            if held:
                lock.release()
            with self._lock:
                users = self._locks[key][1] - 1
                if users:
                    self._locks[key] = (lock, users)
                else:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class _Refresher:
    """One daemon thread per process that runs the caches' background refreshes in turn."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; raises if no thread can be started to run it."""
        with self._lock:
            if self._pid != os.getpid():  # first use, or forked: threads are not inherited
                self._jobs, self._thread = queue.SimpleQueue(), None
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, args=(self._jobs,), daemon=True,
                                          name="trust-cache-refresh")
                thread.start()
                self._pid, self._thread = os.getpid(), thread
            self._jobs.put(job)

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            job = jobs.get()
            try:
                job()
            except BaseException:  # a job logs its own failures; this thread must not end
                log.exception("a background cache refresh failed")


REFRESHER = _Refresher()


class TrustCache(Generic[K, V]):
    """Up to ``size`` values (the oldest insertion goes first), each served for ``ttl`` seconds
    after the lookup that confirmed it began. ``ttl <= 0`` keeps nothing. ``clock`` is
    ``time.monotonic`` (tests move it on)."""

    def __init__(self, ttl: float, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._items: dict[K, tuple[V, float]] = {}  # key -> (value, confirmed at)
        self._lock = threading.Lock()  # every change of _items is made under it
        self._flights: KeyLocks[K] = KeyLocks()
        self._queued: set[K] = set()  # keys whose background refresh is queued or running
        self._pid = os.getpid()  # whose _queued it is (a forked child's jobs are not queued)
        self._drops = 0  # drop() calls: a lookup that began before one does not store

    def get(self, key: K, lookup: Callable[[], V | None],
            refresh: Callable[[], V | None] | None = None) -> V | None:
        """The value for ``key``: the cached one while it is trusted, else ``lookup()``'s.
        ``refresh``: the same lookup, safe on another thread (its own database session); past
        half the ttl it runs in the background and the cached value is served at once."""
        now = self.clock()
        hit = self._items.get(key)
        if hit is not None:
            age = now - hit[1]
            if age < self.ttl / 2:
                return hit[0]
            if age < self.ttl:
                if refresh is None:
                    return self._refresh(key, hit[0], lookup)
                self._refresh_later(key, hit, refresh)
                return hit[0]
        with self._flights.hold(key, timeout=WAIT_SECONDS):  # one lookup at a time
            hit = self._items.get(key)  # who waited uses the answer the lookup before brought
            if hit is not None and self.clock() - hit[1] < self.ttl:
                return hit[0]
            return self._look_up(key, lookup)

    def drop(self, key: K) -> None:
        with self._lock:
            self._drops += 1
            self._items.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[K]:
        """The cached keys, oldest insertion first."""
        return list(self._items)

    def _refresh(self, key: K, value: V, lookup: Callable[[], V | None]) -> V | None:
        """Past half its ttl: the first thread here looks the key up; the others (and that
        one, if the lookup fails) are served the still-trusted ``value``."""
        with self._flights.hold(key, blocking=False) as mine:
            if not mine:
                return value
            try:
                return self._look_up(key, lookup)
            except Exception:
                log.warning("refreshing a cached entry failed; serving it until it lapses",
                            exc_info=True)
                return value

    def _refresh_later(self, key: K, hit: tuple[V, float],
                       refresh: Callable[[], V | None]) -> None:
        value, confirmed = hit
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._queued.clear()
            if key in self._queued:
                return
            self._queued.add(key)

        def job() -> None:
            try:
                hit = self._items.get(key)
                if hit is not None and hit[1] == confirmed:  # not looked up since, nor gone
                    self._refresh(key, value, refresh)
            finally:
                with self._lock:
                    self._queued.discard(key)

        try:
            REFRESHER.submit(job)
        except Exception:  # no thread to run it: refresh here, as without a refresher
            with self._lock:
                self._queued.discard(key)
            self._refresh(key, value, refresh)

    def _look_up(self, key: K, lookup: Callable[[], V | None]) -> V | None:
        began, drops = self.clock(), self._drops
        value = lookup()
        with self._lock:
            self._items.pop(key, None)
            if value is not None and self.ttl > 0 and drops == self._drops:
                while len(self._items) >= self.size:
                    self._items.pop(next(iter(self._items)))  # the oldest insertion
                self._items[key] = (value, began)
        return value
