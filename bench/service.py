"""Service benchmark: job start latency and predict latency, over real HTTP against gunicorn.

    .venv/bin/python bench/service.py [--jobs 50] [--requests 300] [--stacks ...]
    .venv/bin/python bench/service.py --part jobs     # job overhead, ETA, worker scaling

For each stack (SQLite + kombu's filesystem broker; PostgreSQL + Redis) it starts the API and a
worker with the launcher ``make run`` uses and measures
- job start: ``started_at - created_at`` of 50 tiny jobs, one at a time (server timestamps: the
  commit of ``POST /v1/jobs`` to the worker's claim of the job);
- predict: p50/p99 of ``POST /v1/models/{id}/predict`` with 1 and 100 rows on a 784-256-128-10
  model, beside two references run in the same script: a bare endpoint (``GET /healthz``, the
  HTTP + gunicorn floor) and the engine's own ``Model.predict`` in-process (the compute floor).
``--part jobs`` runs ``bench/jobs.py`` instead (job overhead against ``backprop.train`` for four
configurations, the ETA's honesty, jobs per minute with 1 and 2 workers); ``--part all`` both.
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from common import STACKS, pct, session, stack, train_wide, wait_job

from backprop import Model


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def job_starts(http: requests.Session, base: str, n: int) -> list[float]:
    ds = http.post(f"{base}/v1/datasets", json={
        "name": "xor", "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
        "targets": [[0], [1], [1], [0]]}).json()
    tiny = {"dataset_id": ds["id"], "network": {"layers": [{"units": 2}, {"units": 1}]},
            "training": {"epochs": 5, "batch_size": "full"}}
    wait_job(http, base, http.post(f"{base}/v1/jobs", json=tiny).json()["id"])  # warm-up
    starts = []
    for _ in range(n):
        job = wait_job(http, base, http.post(f"{base}/v1/jobs", json=tiny).json()["id"])
        started = datetime.fromisoformat(job["started_at"])
        starts.append((started - datetime.fromisoformat(job["created_at"])).total_seconds())
    return starts


def predict_latencies(http: requests.Session, base: str, n: int) -> dict[str, list[float]]:
    model_id, X = train_wide(http, base)
    local = Model.from_bytes(http.get(f"{base}/v1/models/{model_id}/weights").content)
    one, hundred = {"inputs": X[:1].tolist()}, {"inputs": X[:100].tolist()}
    url = f"{base}/v1/models/{model_id}/predict"
    for body in (one, hundred):  # load the model into every gunicorn worker's cache
        for _ in range(10):
            assert http.post(url, json=body).status_code == 200
    return {
        "healthz": timed(lambda: http.get(f"{base}/healthz"), n),
        "predict_1": timed(lambda: http.post(url, json=one), n),
        "predict_100": timed(lambda: http.post(url, json=hundred), n),
        "engine_1": timed(lambda: local.predict(X[:1]), n),
        "engine_100": timed(lambda: local.predict(X[:100]), n),
    }


def run_stack(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with stack(name) as (base, keys, _):
        http = session(keys[0])
        starts = job_starts(http, base, args.jobs)
        results = predict_latencies(http, base, args.requests)
        http.close()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--part", choices=("latency", "jobs", "all"), default="latency")
    args = parser.parse_args()
    if args.part in ("jobs", "all"):
        import jobs

        figures = jobs.run(args.stacks.split(","), repeats=3, configs="abcd", scaling_jobs=40,
                           rounds=1)
        jobs.report(figures)
        print(json.dumps({"jobs": figures}))
        if args.part == "jobs":
            return
    out = [run_stack(name, args) for name in args.stacks.split(",")]
    print(f"{'stack':18} {'job start p50':>14} {'p90':>8}   {'healthz p50/p99':>16} "
          f"{'predict 1 p50/p99':>18} {'predict 100 p50/p99':>20} {'engine 1/100 p50':>17}")
    for r in out:
        lat = r["latency"]

        def fmt(k: str, lat: dict[str, Any] = lat) -> str:
            return f"{lat[k]['p50_ms']:.2f}/{lat[k]['p99_ms']:.2f}"

        print(f"{r['stack']:18} {r['job_start_median_ms']:>11.1f} ms "
              f"{r['job_start_p90_ms']:>5.1f} ms {fmt('healthz'):>16} {fmt('predict_1'):>18} "
              f"{fmt('predict_100'):>20} {lat['engine_1']['p50_ms']:>8.3f}/"
              f"{lat['engine_100']['p50_ms']:.3f}")
    print(json.dumps({"service": out}))


if __name__ == "__main__":
    main()
