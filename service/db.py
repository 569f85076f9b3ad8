"""Engine and session factory, made per process (again in each worker child after a fork)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_state: dict[str, Any] = {"url": None, "engine": None, "factory": None, "pid": None}


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:  # per process; behind a pooler (PgBouncer) keep them small
        kwargs.update(pool_size=int(os.environ.get("DB_POOL_SIZE") or 5),
                      max_overflow=int(os.environ.get("DB_MAX_OVERFLOW") or 5))
    return create_engine(url, **kwargs)


def configure(url: str) -> None:
    """Use ``url`` for this process (call again after fork: a new engine is made lazily)."""
    if _state["engine"] is not None and _state["url"] != url:
        _state["engine"].dispose()
        _state["engine"] = None
    _state["url"] = url


def engine() -> Engine:
    if _state["url"] is None:
        raise RuntimeError("database not configured: call service.db.configure(url)")
    if _state["engine"] is None or _state["pid"] != os.getpid():
        if _state["engine"] is not None:  # inherited across fork: drop, don't close, its pool
            _state["engine"].dispose(close=False)
        _state["engine"] = make_engine(_state["url"])
        _state["factory"] = sessionmaker(_state["engine"], expire_on_commit=False)
        _state["pid"] = os.getpid()
    return _state["engine"]


def new_session() -> Session:
    engine()
    return _state["factory"]()


def request_session() -> Session:
    """The current request's session (made on first use, closed at app teardown)."""
    from flask import g

    if "db" not in g:
        g.db = new_session()
    return g.db


def close_request_session(_: BaseException | None = None) -> None:
    from flask import g

    s = g.pop("db", None)
    if s is not None:
        s.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = new_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
