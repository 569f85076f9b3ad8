"""Real processes: gunicorn serving the app and a Celery worker, on a real broker and database."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from service.config import Settings
from service.run import commands

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """API + worker processes started with ``service.run.commands`` (what ``make run`` and
    docker-compose run), a bootstrap API key, and an HTTP session to talk to them."""

    def __init__(self, data_dir: Path, database_url: str, broker_url: str) -> None:
        self.port = free_port()
        self.key = "bp_" + secrets.token_urlsafe(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
                    "BROKER_URL": broker_url, "BOOTSTRAP_API_KEY": self.key,
                    "REAPER_INTERVAL_SECONDS": "2", "PYTHONUNBUFFERED": "1"}
        self.log_dir = data_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.log_files: list[Any] = []
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.key}"

    def start(self) -> Stack:
        subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "service.cli", "migrate"],
                       env=self.env, cwd=ROOT, check=True, capture_output=True)
        settings = Settings.from_env()
        for name, cmd in commands(settings, self.port, web_workers=2).items():
            cmd = [c.replace("0.0.0.0", "127.0.0.1") for c in cmd]
            log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed at stop
            self.log_files.append(log)
            self.procs[name] = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=log,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.logs(name)}")
            time.sleep(0.2)
        raise RuntimeError("the stack did not become ready:\n" + self.logs("api"))

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.log_files:
            log.close()
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

        broker = redis_url.rsplit("/", 1)[0] + "/15"  # a database of its own
        redis.Redis.from_url(broker).flushdb()
    s = Stack(data_dir, db_url, broker).start()
    yield s
    s.stop()
