"""``make run``: migrate, then serve the API (gunicorn) and one Celery worker until Ctrl-C.

Defaults need nothing installed: SQLite and kombu's filesystem broker under ``DATA_DIR``
(``./var``). ``DATABASE_URL`` and ``BROKER_URL`` switch to PostgreSQL and Redis. ``Processes``
is also what the end-to-end tests and the service benchmark start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from .config import Settings
from .setup import bootstrap_keys, migrate

ROOT = Path(__file__).resolve().parent.parent


def commands(settings: Settings, port: int, web_workers: int,
             host: str = "127.0.0.1") -> dict[str, list[str]]:
    """The two processes: the same commands docker-compose runs."""
    return {
        "api": [sys.executable, "-m", "gunicorn", "-c", "python:service.gunicorn_conf",
                "--bind", f"{host}:{port}", "--workers", str(web_workers),
                "service.app:create_app()"],
        "worker": [sys.executable, "-m", "celery", "-A", "workers.tasks", "worker",
                   "--queues", "training", "--concurrency", "1", "--loglevel", "INFO"],
    }


class Processes:
    """The API and a worker as child processes (each in its own process group)."""

    def __init__(self, env: dict[str, str], port: int, web_workers: int = 2,
                 host: str = "127.0.0.1", log_dir: Path | None = None) -> None:
        self.env, self.port, self.web_workers, self.host = env, port, web_workers, host
        self.log_dir = log_dir
        self.data_dir = ROOT / (env.get("DATA_DIR") or "var")  # absolute paths stay as they are
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start(self, ready_timeout: float | None = 60.0,
              only: tuple[str, ...] = ("api", "worker")) -> Processes:
        settings = Settings.from_env()
        for name, cmd in commands(settings, self.port, self.web_workers, self.host).items():
            if name not in only:
                continue
            out: IO[bytes] | None = None
            if self.log_dir is not None:
                out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop
                self._logs.append(out)
            self.procs[name] = subprocess.Popen(cmd, env=self.process_env(name), cwd=ROOT,
                                                stdout=out,
                                                stderr=subprocess.STDOUT if out else None,
                                                start_new_session=True)
        if ready_timeout is not None:
            try:
                self.wait_ready(ready_timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def process_env(self, name: str) -> dict[str, str]:
        """Each process group writes its metrics files to its own folder under DATA_DIR."""
        return {**self.env,
                "PROMETHEUS_MULTIPROC_DIR": str(self.data_dir / "metrics" / name)}

    def wait_ready(self, timeout: float) -> None:
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            exited = self.exited()
            if exited:
                raise RuntimeError(f"{exited} exited early:\n{self.log(exited)}")
            time.sleep(0.2)
        raise RuntimeError(f"the API was not ready within {timeout:g} s:\n{self.log('api')}")

    def exited(self) -> str | None:
        return next((name for name, p in self.procs.items() if p.poll() is not None), None)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log" if self.log_dir else None
        return path.read_text(errors="replace")[-4000:] if path and path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to each main process (gunicorn's master, Celery's main process: they stop
        their own children; signalling the children too makes Celery log them as lost), then
        SIGKILL to the whole group after ``timeout``: a job cut off is resumed from its
        checkpoint at the next start."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):  # what is left of the group
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for f in self._logs:
            f.close()


def listening(host: str, port: int) -> str:
    """Where the API listens, as the line ``make run`` prints."""
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::", ""):
        return (f"API listening on {shown}:{port} (every interface; this machine: "
                f"http://127.0.0.1:{port}, docs at /docs)")
    return f"API on http://{shown}:{port}  docs: http://{shown}:{port}/docs"


def main() -> int:
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ["BROKER_URL"] = settings.broker_url
    migrate(settings.database_url)
    key = bootstrap_keys(settings, create_first=True)
    port = int(os.environ.get("PORT") or 8000)
    os.environ.setdefault("WORKER_METRICS_PORT", str(port + 1))  # the worker's own /metrics
    if key:
        key_file = settings.data_dir / "api-key.txt"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        print(f"\n  Your API key (shown once; also saved in {key_file}):\n\n    {key}\n",
              flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    # Loopback unless asked: the embedded run is for this machine (HOST=0.0.0.0 opens it).
    host = os.environ.get("HOST") or "127.0.0.1"
    procs = Processes(dict(os.environ), port, int(os.environ.get("WEB_CONCURRENCY") or 2),
                      host=host)
    procs.start(ready_timeout=None)
    print(f"  {listening(host, port)}  worker metrics: "
          f"http://127.0.0.1:{os.environ['WORKER_METRICS_PORT']}/metrics  (Ctrl-C stops)\n",
          flush=True)
    code = 0
    while not stopping:
        name = procs.exited()
        if name:
            code = procs.procs[name].returncode or 1
            print(f"{name} exited with code {code}; stopping", file=sys.stderr)
            break
        time.sleep(0.2)
    procs.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
