"""The typed exceptions a healthy stack does not give: an API whose database is down (503 with
Retry-After), and one behind a tight rate limit (429). Real gunicorn processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from backprop_client import Client, NotFound, RateLimited, ServerError, ServiceUnavailable
from service.run import ROOT, Processes
from tests.e2e.conftest import free_port

RATE = 4
KEY = "bp_limited_test_key_0123456789"


def _api(data_dir: Path, database_url: str, key: str) -> Iterator[str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "BROKER_URL": "filesystem://",
           "DATABASE_URL": database_url, "RATE_LIMIT": f"{RATE} per minute",
           "BOOTSTRAP_API_KEY": key, "PYTHONUNBUFFERED": "1"}
    if key:
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, cwd=ROOT,
                       check=True, capture_output=True)
    procs = Processes(env, free_port(), web_workers=1, host="127.0.0.1", log_dir=data_dir)
    procs.start(ready_timeout=None, only=("api",))
    base = f"http://127.0.0.1:{procs.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # still booting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(procs.log("api"))
            time.sleep(0.2)
        yield base
    finally:
        procs.stop()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _api(tmp_path_factory.mktemp("broken"),
                    f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none", "")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("limited")
    yield from _api(data_dir, f"sqlite:///{data_dir / 'service.db'}", KEY)


def test_database_down(broken: str) -> None:
    client = Client(broken, "bp_any", max_retries=0)
    with pytest.raises(ServiceUnavailable) as down:
        client.jobs.get("job_x")
    assert isinstance(down.value, ServerError)
    # the service says 5 s; flask-limiter's headers raise it to the rate window's reset
    assert down.value.status == 503 and (down.value.retry_after or 0) >= 5
    assert "database" in down.value.detail


def test_rate_limited(limited: str) -> None:
    client = Client(limited, KEY, max_retries=0)
    # the limit is a fixed window: within two windows, at most 2 * RATE requests pass
    for _ in range(2 * RATE + 1):
        try:
            client.datasets.get("ds_x")
        except NotFound:
            continue
        except RateLimited as exc:
            assert exc.status == 429 and exc.retry_after
            assert "RATE_LIMIT" in exc.detail or "rate limit" in exc.detail
            break
    else:
        pytest.fail("no 429 after twice the rate limit")
