"""Service benchmark: job start latency and predict latency, over real HTTP against gunicorn.

    .venv/bin/python bench/service.py [--jobs 50] [--requests 300] [--stacks sqlite,postgres]

For each stack (SQLite + kombu's filesystem broker; PostgreSQL + Redis) it starts the API and a
worker with the same launcher as ``make run`` and measures
- job start: ``started_at - created_at`` of 50 tiny jobs, one at a time (server timestamps: the
  commit of ``POST /v1/jobs`` to the worker's claim of the job);
- predict: p50/p99 of ``POST /v1/models/{id}/predict`` with 1 and 100 rows on a 784-256-128-10
  model, beside two references run in the same script: a bare endpoint (``GET /healthz``, the
  HTTP + gunicorn floor) and the engine's own ``Model.predict`` in-process (the compute floor).
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backprop import Model
from service.run import Processes
from service.setup import bootstrap_keys, migrate

PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/14"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def wait(http: requests.Session, base: str, job_id: str) -> dict[str, Any]:
    while True:
        job = http.get(f"{base}/v1/jobs/{job_id}", timeout=30).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)


def run_stack(name: str, database_url: str, broker_url: str, args: argparse.Namespace,
              ) -> dict[str, Any]:
    from service.config import Settings

    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    key = "bp_" + secrets.token_urlsafe(24)
    env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
           "BROKER_URL": broker_url, "BOOTSTRAP_API_KEY": key}
    os.environ.update({k: env[k] for k in ("DATA_DIR", "DATABASE_URL", "BROKER_URL",
                                           "BOOTSTRAP_API_KEY")})
    migrate(database_url)
    bootstrap_keys(Settings.from_env())
    port = 18000 + secrets.randbelow(2000)
    procs = Processes(env, port, web_workers=2, host="127.0.0.1", log_dir=data_dir).start()
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    try:
        ds = http.post(f"{base}/v1/datasets", json={
            "name": "xor", "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
            "targets": [[0], [1], [1], [0]]}).json()
        tiny = {"dataset_id": ds["id"], "network": {"layers": [{"units": 2}, {"units": 1}]},
                "training": {"epochs": 5, "batch_size": "full"}}
        wait(http, base, http.post(f"{base}/v1/jobs", json=tiny).json()["id"])  # warm-up
        starts = []
        for _ in range(args.jobs):
            job = wait(http, base, http.post(f"{base}/v1/jobs", json=tiny).json()["id"])
            created = datetime.fromisoformat(job["created_at"])
            started = datetime.fromisoformat(job["started_at"])
            starts.append((started - created).total_seconds())

        rng = np.random.default_rng(0)
        X = rng.normal(size=(256, 784)).round(3)
        labels = [int(v) for v in rng.integers(0, 10, size=256)]
        ds = http.post(f"{base}/v1/datasets", json={"name": "wide", "inputs": X.tolist(),
                                                     "labels": labels}).json()
        job = wait(http, base, http.post(f"{base}/v1/jobs", json={
            "dataset_id": ds["id"],
            "network": {"layers": [{"units": 256, "activation": "relu"},
                                   {"units": 128, "activation": "relu"}, {"units": 10}]},
            "training": {"epochs": 1}}).json()["id"])
        model_id = job["model_id"]
        weights = http.get(f"{base}/v1/models/{model_id}/weights").content
        local = Model.from_bytes(weights)
        one, hundred = {"inputs": X[:1].tolist()}, {"inputs": X[:100].tolist()}
        url = f"{base}/v1/models/{model_id}/predict"
        for body in (one, hundred):  # warm every gunicorn worker's model cache
            for _ in range(10):
                assert http.post(url, json=body).status_code == 200
        n = args.requests
        results: dict[str, list[float]] = {
            "healthz": timed(lambda: http.get(f"{base}/healthz"), n),
            "predict_1": timed(lambda: http.post(url, json=one), n),
            "predict_100": timed(lambda: http.post(url, json=hundred), n),
            "engine_1": timed(lambda: local.predict(X[:1]), n),
            "engine_100": timed(lambda: local.predict(X[:100]), n),
        }
    finally:
        http.close()
        procs.stop()
    ms = {k: {"p50_ms": pct(v, 50) * 1e3, "p99_ms": pct(v, 99) * 1e3}
          for k, v in results.items()}
    return {
        "stack": name,
        "job_start_median_ms": statistics.median(starts) * 1e3,
        "job_start_p90_ms": pct(starts, 90) * 1e3,
        "jobs": len(starts),
        "latency": ms,
        "predict_1_over_healthz_p50": ms["predict_1"]["p50_ms"] / ms["healthz"]["p50_ms"],
        "predict_100_over_healthz_p50": ms["predict_100"]["p50_ms"] / ms["healthz"]["p50_ms"],
    }


def postgres_database() -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"bp_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--stacks", default="sqlite,postgres")
    args = parser.parse_args()
    out = []
    for stack in args.stacks.split(","):
        if stack == "sqlite":
            path = Path(tempfile.mkdtemp(prefix="bench-db-")) / "service.db"
            out.append(run_stack("sqlite+filesystem", f"sqlite:///{path}", "filesystem://",
                                 args))
        else:
            import redis

            redis.Redis.from_url(REDIS).flushdb()
            url, drop = postgres_database()
            try:
                out.append(run_stack("postgres+redis", url, REDIS, args))
            finally:
                drop()
    print(f"{'stack':18} {'job start p50':>14} {'p90':>8}   "
          f"{'healthz p50/p99':>16} {'predict 1 p50/p99':>18} {'predict 100 p50/p99':>20}"
          f" {'engine 1/100 p50':>17}")
    for r in out:
        lat = r["latency"]

        def fmt(k: str, lat: dict[str, Any] = lat) -> str:
            return f"{lat[k]['p50_ms']:.2f}/{lat[k]['p99_ms']:.2f}"

        print(f"{r['stack']:18} {r['job_start_median_ms']:>11.1f} ms {r['job_start_p90_ms']:>5.1f}"
              f" ms {fmt('healthz'):>16} {fmt('predict_1'):>18} {fmt('predict_100'):>20}"
              f" {lat['engine_1']['p50_ms']:.3f}/{lat['engine_100']['p50_ms']:.3f}")
    print(json.dumps({"service": out}))


if __name__ == "__main__":
    main()
