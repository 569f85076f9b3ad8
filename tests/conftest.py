"""Shared fixtures: real PostgreSQL and Redis when reachable (required in CI), SQLite and the
filesystem broker otherwise; a Flask app and test client; API keys of two tenants."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
# One cache of the compiled training kernel for every test session and for the workers the e2e
# tests start (they inherit the environment), not a cold compile per temporary DATA_DIR.
os.environ.setdefault("NUMBA_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "backprop-tests-numba-cache"))
PG_URL = os.environ.get("TEST_DATABASE_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _missing(what: str, exc: Exception) -> None:
    msg = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(msg + " and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    from service.setup import migrate

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 3})
    name = f"bp_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _missing("PostgreSQL", exc)
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    from service import db

    db.configure("sqlite://")  # release this process's pool on the test database
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        _missing("Redis", exc)
    return REDIS_URL


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from service.setup import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'service.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL when reachable (always in CI), else SQLite."""
    if REQUIRE_SERVICES or os.environ.get("TEST_DATABASE") != "sqlite":
        try:
            return request.getfixturevalue("postgres_url")
        except pytest.skip.Exception:
            pass
    return request.getfixturevalue("sqlite_url")


@pytest.fixture()
def app(database_url: str, tmp_path: Path) -> Any:
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://"})
    app.config["TESTING"] = True
    return app


@pytest.fixture()
def client(app: Any) -> Any:
    return app.test_client()


def _key(tenant: str) -> str:
    from service import auth, db

    with db.session_scope() as s:
        return auth.create_key(s, tenant)


@pytest.fixture()
def key(app: Any) -> str:
    return _key(f"tenant-{secrets.token_hex(4)}")


@pytest.fixture()
def other_key(app: Any) -> str:
    return _key(f"other-{secrets.token_hex(4)}")


@pytest.fixture()
def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
