"""Real processes: gunicorn serving the app and a Celery worker, on a real broker and database."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from service.run import ROOT, Processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack(Processes):
    """API + worker processes (what ``make run`` and docker-compose run), a bootstrap API key,
    and an HTTP session to talk to them."""

    def __init__(self, data_dir: Path, database_url: str, broker_url: str,
                 **extra_env: str) -> None:
        self.key = "bp_" + secrets.token_urlsafe(24)
        self.database_url, self.broker_url = database_url, broker_url
        env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
               "BROKER_URL": broker_url, "BOOTSTRAP_API_KEY": self.key,
               "REAPER_INTERVAL_SECONDS": "2", "PYTHONUNBUFFERED": "1", **extra_env}
        super().__init__(env, free_port(), web_workers=2, host="127.0.0.1", log_dir=data_dir)
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.key}"

    def start(self, ready_timeout: float | None = 60.0,
              only: tuple[str, ...] = ("api", "worker")) -> Stack:
        if "api" in only:
            subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=self.env,
                           cwd=ROOT, check=True, capture_output=True)
        super().start(ready_timeout, only)
        return self

    def logs(self, name: str) -> str:
        return self.log(name)

    def stop(self, timeout: float = 20.0) -> None:
        super().stop(timeout)
        self.http.close()

    # -- client helpers --------------------------------------------------------------------

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.base + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.base + path, timeout=30, **kwargs)

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish: {job}\n{self.logs('worker')}")


@pytest.fixture(scope="module", params=["sqlite+filesystem", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    if request.param == "sqlite+filesystem":
        db_url, broker = f"sqlite:///{data_dir / 'service.db'}", "filesystem://"
    else:
        db_url = request.getfixturevalue("postgres_url")
        redis_url = request.getfixturevalue("redis_url")
        import redis

        # a database of its own (TEST_REDIS_DB lets concurrent test runs use different ones)
        broker = redis_url.rsplit("/", 1)[0] + "/" + os.environ.get("TEST_REDIS_DB", "15")
        redis.Redis.from_url(broker).flushdb()
    s = Stack(data_dir, db_url, broker).start()
    yield s
    s.stop()
