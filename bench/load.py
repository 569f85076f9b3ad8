"""Bounded load test: N concurrent clients for T seconds uploading datasets, training small
jobs, polling them and predicting, against the embedded and the PostgreSQL + Redis stacks.

    .venv/bin/python bench/load.py [--clients 20] [--seconds 60] [--stacks ...]

Each client has its own API key (tenant) and loops: upload a small dataset (every 5th round),
start a small job, poll it to the end, then predict 5 times with the newest model it has.
Afterwards every job accepted is awaited (up to 5 minutes). Reports errors (5xx, connection
errors, or any 4xx: the clients send only valid requests), jobs finished of jobs accepted,
requests per second and latency p50/p99. Traffic goes to 127.0.0.1 only, bounded in time. The
rate limit is raised to 1,000,000 a minute a key (it still does its work on every request).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from typing import Any

import numpy as np
import requests
from common import STACKS, pct, session, stack, wait_job


class Client(threading.Thread):
    def __init__(self, index: int, base: str, key: str, until: float) -> None:
        super().__init__(daemon=True)
        self.index, self.base, self.until = index, base, until
        self.http = session(key)
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.jobs: list[str] = []
        self.rng = np.random.default_rng(index)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            r = self.http.request(method, self.base + path, timeout=60, **kwargs)
        except requests.RequestException as exc:
            self.errors[type(exc).__name__] += 1
            return None
        self.latencies.append(time.perf_counter() - t0)
        if r.status_code >= 400:
            self.errors[f"{r.status_code} {method} {path.split('/')[2]}"] += 1
            return None
        return r.json() if r.content and r.headers.get("Content-Type", "").startswith(
            "application/json") else None

    def run(self) -> None:
        dataset_id, model_id, rounds = None, None, 0
        while time.monotonic() < self.until:
            if rounds % 5 == 0 or dataset_id is None:
                X = self.rng.normal(size=(200, 4)).round(4)
                labels = ["a" if v > 0 else "b" for v in X[:, 0] * X[:, 1]]
                ds = self.call("POST", "/v1/datasets", json={
                    "name": f"c{self.index}-{rounds}", "inputs": X.tolist(), "labels": labels})
                dataset_id = ds["id"] if ds else dataset_id
            rounds += 1
            if dataset_id is None:
                continue
            job = self.call("POST", "/v1/jobs", json={
                "dataset_id": dataset_id,
                "network": {"layers": [{"units": 8}, {"units": 2}]},
                "training": {"epochs": 20, "optimizer": {"name": "adam",
                                                         "learning_rate": 0.02}}})
            if job is None:
                continue
            self.jobs.append(job["id"])
            while time.monotonic() < self.until:
                job = self.call("GET", f"/v1/jobs/{job['id']}")
                if job is None or job["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.2)
            if job is not None and job.get("model_id"):
                model_id = job["model_id"]
            if model_id:
                for _ in range(5):
                    self.call("POST", f"/v1/models/{model_id}/predict",
                              json={"inputs": self.rng.normal(size=(10, 4)).tolist()})


def run_stack(name: str, clients: int, seconds: float) -> dict[str, Any]:
    # The limit is raised so that it never answers 429 (it still counts every request): 20
    # clients polling every 0.2 s go past the default 1,200 a minute a key on a fast stack.
    with stack(name, keys=clients, RATE_LIMIT="1000000 per minute") as (base, keys, _):
        start = time.monotonic()
        workers = [Client(i, base, keys[i], start + seconds) for i in range(clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - start
        statuses: Counter[str] = Counter()
        for w in workers:
            for job_id in w.jobs:
                statuses[wait_job(w.http, base, job_id, timeout=300)["status"]] += 1
            w.http.close()
    latencies = [x for w in workers for x in w.latencies]
    errors = sum((w.errors for w in workers), Counter())
    accepted = sum(len(w.jobs) for w in workers)
    return {
        "stack": name, "clients": clients, "seconds": round(elapsed, 1),
        "requests": len(latencies) + sum(errors.values()), "errors": sum(errors.values()),
        "error_kinds": dict(errors), "jobs_accepted": accepted,
        "jobs_succeeded": statuses.get("succeeded", 0), "job_statuses": dict(statuses),
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1e3, "p99_ms": pct(latencies, 99) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--stacks", default=",".join(STACKS))
    args = parser.parse_args()
    out = [run_stack(name, args.clients, args.seconds) for name in args.stacks.split(",")]
    print(f"{'stack':18} {'requests':>8} {'errors':>6} {'jobs done/accepted':>19} "
          f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}")
    for r in out:
        print(f"{r['stack']:18} {r['requests']:>8} {r['errors']:>6} "
              f"{r['jobs_succeeded']:>9}/{r['jobs_accepted']:<9} {r['requests_per_second']:>7.1f}"
              f" {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}")
    print(json.dumps({"load": out}))


if __name__ == "__main__":
    main()
