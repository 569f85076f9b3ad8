"""The rate limiter's shared counters: fixed windows in a SQLite file (one machine, ``make run``)
or in Redis (``REDIS_URL``, docker-compose). Both add to a window's count and return the new
count with the seconds the window has left, in one round trip."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any, Protocol

from limits.storage import RedisStorage, Storage


class CountingStore(Protocol):
    """What the limiter needs of its store (``SqliteStorage``, ``RedisCounters``)."""

    def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]: ...

    def check(self) -> bool: ...


class SqliteStorage(Storage):
    """Fixed-window counters in one SQLite file shared by the processes of one machine.

    One short write transaction per block of hits (WAL, no fsync: counters may be lost in a
    crash, which only forgives a window)."""

    STORAGE_SCHEME = ["bp-sqlite"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.path = str(options.get("path") or (uri or "").removeprefix("bp-sqlite://"))
        self._local = threading.local()

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, "
                         "count INTEGER NOT NULL, expires REAL NOT NULL)")
            self._local.conn = conn
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.count(key, expiry, amount)[0]

    def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        """Add ``amount`` to the window's count: the new count and the seconds the window has
        left, in one transaction."""
        now = time.time()
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "INSERT INTO counters (key, count, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET "
                "count = CASE WHEN expires <= ? THEN excluded.count ELSE count + excluded.count "
                "END, expires = CASE WHEN expires <= ? THEN excluded.expires ELSE expires END "
                "RETURNING count, expires", (key, amount, now + expiry, now, now)).fetchone()
            if row[0] == amount:  # a new window: forget expired windows of every key now and then
                conn.execute("DELETE FROM counters WHERE expires <= ?", (now,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row[0]), max(0.0, float(row[1]) - now)

    def get(self, key: str) -> int:
        row = self._conn().execute("SELECT count FROM counters WHERE key = ? AND expires > ?",
                                   (key, time.time())).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._conn().execute("SELECT expires FROM counters WHERE key = ?",
                                   (key,)).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        self._conn().execute("SELECT 1")
        return True

    def reset(self) -> int | None:
        return self._conn().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._conn().execute("DELETE FROM counters WHERE key = ?", (key,))


class RedisCounters(RedisStorage):
    """limits' Redis store, plus a script that counts and tells the window's end in one trip."""

    SCRIPT_COUNT = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if current == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self._lua_count = self.get_connection().register_script(self.SCRIPT_COUNT)

    def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
        current, pttl = self._lua_count([self.prefixed_key(key)], [expiry, amount])
        return int(current), float(pttl) / 1000 if int(pttl) >= 0 else float(expiry)
