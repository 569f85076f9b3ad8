"""``make run``: migrate, then serve the API (gunicorn) and one Celery worker until Ctrl-C.

Defaults need nothing installed: SQLite and kombu's filesystem broker under ``DATA_DIR``
(``./var``). ``DATABASE_URL`` and ``BROKER_URL`` switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import Settings
from .setup import bootstrap_keys, migrate


def commands(settings: Settings, port: int, web_workers: int) -> dict[str, list[str]]:
    """The two processes: the same commands docker-compose runs."""
    return {
        "api": [sys.executable, "-m", "gunicorn", "--bind", f"0.0.0.0:{port}",
                "--workers", str(web_workers), "--access-logfile", "-",
                "--graceful-timeout", "10", "service.app:create_app()"],
        "worker": [sys.executable, "-m", "celery", "-A", "workers.tasks", "worker",
                   "--queues", "training", "--concurrency", "1", "--loglevel", "INFO",
                   "--hostname", f"worker-{os.getpid()}@%h"],
    }


def main() -> int:
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ["BROKER_URL"] = settings.broker_url
    migrate(settings.database_url)
    key = bootstrap_keys(settings, create_first=True)
    port = int(os.environ.get("PORT") or 8000)
    if key:
        key_file = settings.data_dir / "api-key.txt"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        print(f"\n  Your API key (shown once; also saved in {key_file}):\n\n    {key}\n",
              flush=True)
    print(f"  API on http://127.0.0.1:{port}  docs: http://127.0.0.1:{port}/docs  "
          f"(Ctrl-C stops)\n", flush=True)
    procs = {name: subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent)
             for name, cmd in commands(settings, port,
                                       int(os.environ.get("WEB_CONCURRENCY") or 2)).items()}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                code, stopping = proc.returncode or 1, True
        time.sleep(0.2)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()  # a job cut off here resumes from its checkpoint at the next start
    return code


if __name__ == "__main__":
    sys.exit(main())
