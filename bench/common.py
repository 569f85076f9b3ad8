"""What the service benchmarks share: start a stack (the ``make run`` launcher) on SQLite +
the filesystem broker or on PostgreSQL + Redis, and small statistics helpers."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import auth, db
from service.run import Processes
from service.setup import migrate

PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
# The benchmark flushes this Redis database: BENCH_REDIS_URL, else DB 14 of TEST_REDIS_URL's server.
REDIS = os.environ.get("BENCH_REDIS_URL") or \
    os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"
STACKS = ("sqlite+filesystem", "postgres+redis")
# One compiled-kernel cache for every stack a benchmark starts. Each stack has a fresh DATA_DIR,
# and a worker warming the kernel into an empty DATA_DIR/numba-cache compiles for 15-55 s at a
# full core, in the background, beside whatever is being measured.
NUMBA_CACHE = os.environ.get("NUMBA_CACHE_DIR") or \
    os.path.join(tempfile.gettempdir(), f"backprop-bench-numba-cache-{os.getuid()}")
LAST_ENV: dict[str, str] = {}  # the environment of the stack started last (to add workers)


def wide_data(rows: int = 256) -> tuple[np.ndarray, list[int]]:
    """Random 784-feature rows and 10-class labels for the predict benchmarks' classifier."""
    rng = np.random.default_rng(0)
    return rng.normal(size=(rows, 784)).round(3), [int(v) for v in rng.integers(0, 10, rows)]


def wide_job(dataset_id: str) -> dict[str, Any]:
    """The body of the job that trains it: 784-256-128-10 relu/softmax, 1 epoch."""
    return {"dataset_id": dataset_id, "training": {"epochs": 1},
            "network": {"layers": [{"units": 256, "activation": "relu"},
                                   {"units": 128, "activation": "relu"}, {"units": 10}]}}


def train_wide(http: requests.Session, base: str) -> tuple[str, np.ndarray]:
    """Train the predict benchmarks' classifier through the API: its model id and rows."""
    X, labels = wide_data()
    ds = http.post(f"{base}/v1/datasets", json={"name": "wide", "inputs": X.tolist(),
                                                 "labels": labels}).json()
    job = wait_job(http, base, http.post(f"{base}/v1/jobs", json=wide_job(ds["id"])).json()["id"])
    return job["model_id"], X


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def wait_job(http: requests.Session, base: str, job_id: str, timeout: float = 300,
             ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"{base}/v1/jobs/{job_id}", timeout=30).json()
        if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


@contextmanager
def _postgres_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bp_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        db.configure("sqlite://")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def stack(name: str, keys: int = 1, workers: int = 1, web_workers: int = 2, **extra_env: str,
          ) -> Iterator[tuple[str, list[str], Callable[[str], str]]]:
    """Start API + ``workers`` worker processes; yields ``(base_url, api_keys, log_reader)``."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name.split('+')[0]}-"))
    warm_kernel()
    with (_postgres_database() if name == "postgres+redis"
          else _nullcontext(f"sqlite:///{data_dir / 'service.db'}")) as database_url:
        broker = "filesystem://"
        if name == "postgres+redis":
            import redis

            redis.Redis.from_url(REDIS).flushdb()
            broker = REDIS
        env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
               "BROKER_URL": broker, "NUMBA_CACHE_DIR": NUMBA_CACHE, **extra_env}
        LAST_ENV.clear()
        LAST_ENV.update(env)
        migrate(database_url)
        db.configure(database_url)
        with db.session_scope() as s:
            made = [auth.create_key(s, f"bench-{i}") for i in range(keys)]
        port = 18000 + secrets.randbelow(2000)
        procs = Processes(env, port, web_workers=web_workers, host="127.0.0.1",
                          log_dir=data_dir).start()
        more = [Processes(env, port, log_dir=data_dir).start(ready_timeout=None, only=("worker",))
                for _ in range(workers - 1)]
        try:
            yield f"http://127.0.0.1:{port}", made, procs.log
        finally:
            for p in more:
                p.stop()
            procs.stop()


_WARMED: list[bool] = []


def warm_kernel() -> None:
    """Compile the kernel into ``NUMBA_CACHE`` (once per benchmark process; nothing to do when
    it is there, or without numba), so that the stack's workers load it in a second or so
    instead of compiling while measured."""
    import subprocess

    if _WARMED:
        return
    subprocess.run([sys.executable, "-c", "from backprop import kernels; "
                    "kernels.warm_up(background=False)"], check=True,
                   env={**os.environ, "NUMBA_CACHE_DIR": NUMBA_CACHE},
                   cwd=Path(__file__).resolve().parent.parent)
    _WARMED.append(True)


@contextmanager
def _nullcontext(value: str) -> Iterator[str]:
    yield value


def session(key: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    return http
