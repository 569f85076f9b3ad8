"""Jobs at engine speed: job overhead, ETA honesty and worker scaling, over real HTTP.

    .venv/bin/python bench/service.py --part jobs        # both stacks, ~4-6 min
    .venv/bin/python bench/jobs.py [--repeats 3] [--stacks ...] [--scaling-jobs 40]

*Job overhead* = (``finished_at - started_at``, the server's timestamps) / the time of
``backprop.train`` on the same spec and data, run by this script in the same run with the same
BLAS thread count (1; the stack's worker gets ``BLAS_THREADS=1``), alternating job and
reference; the figure is the median of the per-pair ratios. The first job on each dataset is
reported apart (*cold*: the worker reads and parses the dataset blob; later jobs on it find the
arrays in the worker's dataset cache). *Best* = the fastest job over the fastest engine run of
the same repeats: on a shared machine noise only ever adds time, so it is the steadier figure.
*ETA*: polled at the first answer past 10 % of the epochs, against the time that really
remained (``finished_at`` minus the poll's time).
*Scaling* (PostgreSQL + Redis): 40 small CPU-bound jobs drained by 1 and then by 2 worker
processes; jobs per minute from the first ``started_at`` to the last ``finished_at``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import common
import numpy as np
import requests
from common import session, stack
from threadpoolctl import threadpool_limits

import backprop
from service import auth, datasets, db

ROWS = {"a": 150, "b": 4, "c": 1797, "d": 60000}
CONFIGS: dict[str, dict[str, Any]] = {
    "a": {"network": {"layers": [{"units": 16, "activation": "tanh"},
                                 {"units": 3, "activation": "softmax"}]},
          "training": {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 3000,
                       "batch_size": "full", "seed": 1}},
    "b": {"network": {"layers": [{"units": 2, "activation": "sigmoid"},
                                 {"units": 1, "activation": "sigmoid"}]},
          "training": {"optimizer": {"name": "sgd", "learning_rate": 0.5}, "epochs": 2000,
                       "batch_size": 1, "standardize": False, "seed": 1}},
    "c": {"network": {"layers": [{"units": 32, "activation": "relu"}, {"units": 10}]},
          "training": {"optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
                       "epochs": 100, "batch_size": 32, "seed": 1}},
    "d": {"network": {"layers": [{"units": 256, "activation": "relu"},
                                 {"units": 128, "activation": "relu"}, {"units": 10}]},
          "training": {"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
                       "epochs": 3, "batch_size": 128, "seed": 1}},
}
LABELS = {"a": "iris-like 4-16-3 full batch, 3,000 epochs",
          "b": "XOR 2-2-1 online, 2,000 epochs",
          "c": "digits-like 64-32-10 batch 32, 100 epochs",
          "d": "784-256-128-10 batch 128, 60,000 rows, 3 epochs"}


def data(name: str) -> tuple[np.ndarray, np.ndarray | None, list[int] | None]:
    """Synthetic data of each configuration's shape: ``(X, targets, labels)``."""
    rng = np.random.default_rng(7)
    if name == "b":
        return np.array([[0., 0], [0, 1], [1, 0], [1, 1]]), np.array([[0.], [1], [1], [0]]), None
    features, classes = {"a": (4, 3), "c": (64, 10), "d": (784, 10)}[name]
    X = rng.normal(size=(ROWS[name], features)).round(3)
    teacher = rng.normal(size=(features, classes))
    return X, None, [int(v) for v in (X @ teacher).argmax(axis=1)]


def store(tenant: str, name: str, X: np.ndarray, Y: np.ndarray | None,
          labels: list[int] | None) -> str:
    """Put a dataset in the stack's database (the 60,000 x 784 one is over the upload limit)."""
    if labels is not None:
        classes = sorted(set(labels))
        parsed = datasets.Parsed(name, X, np.array([classes.index(v) for v in labels]),
                                 classes, [f"x{i}" for i in range(X.shape[1])], ["label"])
    else:
        parsed = datasets.Parsed(name, X, Y, None, [f"x{i}" for i in range(X.shape[1])], ["y"])
    with db.session_scope() as s:
        tenant_id = auth.get_or_create_tenant(s, tenant).id
        return datasets.store(s, tenant_id, parsed).id


def seconds(job: dict[str, Any]) -> float:
    return (datetime.fromisoformat(job["finished_at"])
            - datetime.fromisoformat(job["started_at"])).total_seconds()


def run_job(http: requests.Session, base: str, body: dict[str, Any],
            eta: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Run one job to its end. Polls every 0.25 s (every 0.1 s while looking for the 10 % mark):
    on 2 cores, a client polling faster takes CPU from the worker it measures."""
    job = http.post(f"{base}/v1/jobs", json=body).json()
    seen = None
    while True:
        job = http.get(f"{base}/v1/jobs/{job['id']}").json()
        if eta is not None and seen is None and job["status"] == "running" \
                and job["progress"]["fraction"] >= 0.1 \
                and job["progress"]["eta_seconds"] is not None:
            seen = (time.time(), job["progress"]["eta_seconds"])
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1 if eta is not None and seen is None else 0.25)
    if eta is not None and seen is not None and job["status"] == "succeeded":
        finished = datetime.fromisoformat(job["finished_at"]).timestamp()
        eta.append((seen[1], finished - seen[0]))
    return job


def overhead(http: requests.Session, base: str, tenant: str, repeats: int,
             configs: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in configs:
        X, Y, labels = data(name)
        ds = store(tenant, name, X, Y, labels)
        body = {"dataset_id": ds, **CONFIGS[name]}
        y = labels if labels is not None else Y
        cold = run_job(http, base, body)
        assert cold["status"] == "succeeded", cold
        with threadpool_limits(1):
            backprop.train(CONFIGS[name], X, y)  # warm-up
        ratios, jobs, engine, etas = [], [], [], []
        for _ in range(repeats):
            job = run_job(http, base, body, etas if name == "d" else None)
            assert job["status"] == "succeeded", job
            with threadpool_limits(1):
                t0 = time.perf_counter()
                backprop.train(CONFIGS[name], X, y)
                engine.append(time.perf_counter() - t0)
            jobs.append(seconds(job))
            ratios.append(jobs[-1] / engine[-1])
        out[name] = {"label": LABELS[name], "overhead": statistics.median(ratios),
                     "best": min(jobs) / min(engine),
                     "ratios": ratios, "job_s": jobs, "engine_s": engine,
                     "cold_overhead": seconds(cold) / statistics.median(engine),
                     "eta": etas}
        print(f"  {name}: overhead {out[name]['overhead']:.3f} (best {out[name]['best']:.3f}, "
              f"cold {out[name]['cold_overhead']:.3f}) job {statistics.median(jobs):.3f} s, engine "
              f"{statistics.median(engine):.3f} s", file=sys.stderr, flush=True)
    return out


def eta_check(http: requests.Session, base: str, tenant: str) -> list[tuple[float, float]]:
    """A 4-16-3 full-batch job of 60,000 epochs (a few seconds), polled past 10 %."""
    X, _, labels = data("a")
    ds = store(tenant, "eta", X, None, labels)
    spec = {**CONFIGS["a"], "training": {**CONFIGS["a"]["training"], "epochs": 60000}}
    etas: list[tuple[float, float]] = []
    run_job(http, base, {"dataset_id": ds, **spec}, etas)
    return etas


def extra_worker(env: dict[str, str], name: str, log_dir: Path) -> subprocess.Popen[bytes]:
    from service.config import Settings
    from service.run import ROOT, commands

    cmd = [*commands(Settings.from_env(), 0, 1)["worker"], "-n", f"{name}@%h"]
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc


def drain(http: requests.Session, base: str, ds: str, n: int) -> float:
    """Submit ``n`` jobs (~1 s of training each) at once; jobs per minute from the first start
    to the last finish."""
    spec = {**CONFIGS["c"], "training": {**CONFIGS["c"]["training"], "epochs": 400}}
    ids = [http.post(f"{base}/v1/jobs", json={"dataset_id": ds, **spec}).json()["id"]
           for _ in range(n)]
    jobs = []
    for job_id in ids:  # poll slowly: the client must not take the workers' CPU
        while (job := http.get(f"{base}/v1/jobs/{job_id}").json())["status"] in (
                "queued", "running"):
            time.sleep(0.5)
        jobs.append(job)
    assert all(j["status"] == "succeeded" for j in jobs), [j["error"] for j in jobs]
    first = min(datetime.fromisoformat(j["started_at"]) for j in jobs)
    last = max(datetime.fromisoformat(j["finished_at"]) for j in jobs)
    return n / ((last - first).total_seconds() / 60)


def scaling(n: int, rounds: int) -> dict[str, Any]:
    env = {"BLAS_THREADS": "1"}
    with stack("postgres+redis", **env) as (base, keys, _):
        http = session(keys[0])
        X, _, labels = data("c")
        ds = store("bench-0", "scale", X, None, labels)
        drain(http, base, ds, 4)  # warm-up
        rates: dict[str, list[float]] = {"1": [], "2": []}
        for _ in range(rounds):
            rates["1"].append(drain(http, base, ds, n))
            second = extra_worker(common.LAST_ENV, "second",
                                  Path(common.LAST_ENV["DATA_DIR"]))
            try:
                rates["2"].append(drain(http, base, ds, n))
            finally:
                second.terminate()
                second.wait()
        http.close()
    ratio = statistics.median(b / a for a, b in zip(rates["1"], rates["2"], strict=True))
    print(f"  scaling: 1 worker {rates['1']} jobs/min, 2 workers {rates['2']}: x{ratio:.2f}",
          file=sys.stderr, flush=True)
    return {"jobs": n, "jobs_per_minute": rates, "ratio": ratio}


def run(stacks: list[str], repeats: int, configs: str, scaling_jobs: int,
        rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"overhead": {}, "eta": {}}
    for name in stacks:
        print(f"{name}:", file=sys.stderr, flush=True)
        with stack(name, BLAS_THREADS="1") as (base, keys, _):
            http = session(keys[0])
            out["overhead"][name] = overhead(http, base, "bench-0", repeats, configs)
            out["eta"][name] = eta_check(http, base, "bench-0") + \
                out["overhead"][name].get("d", {}).get("eta", [])
            http.close()
    if scaling_jobs and "postgres+redis" in stacks:
        out["scaling"] = scaling(scaling_jobs, rounds)
    return out


def report(out: dict[str, Any]) -> None:
    print("overhead: median of per-pair ratios / fastest job over fastest engine run (noise only "
          "adds time)")
    print(f"{'config':52} " + " ".join(f"{s:>34}" for s in out["overhead"]))
    for name in next(iter(out["overhead"].values())):
        cells = []
        for r in out["overhead"].values():
            c = r[name]
            cells.append(f"{c['overhead']:.3f} / {c['best']:.3f} (cold {c['cold_overhead']:.2f})")
        print(f"{LABELS[name]:52} " + " ".join(f"{c:>34}" for c in cells))
    for name, etas in out["eta"].items():
        text = ", ".join(f"ETA {e:.2f} s vs {a:.2f} s left ({e / a:.2f})" for e, a in etas)
        print(f"ETA at 10 % [{name}]: {text or 'not seen'}")
    if "scaling" in out:
        sc = out["scaling"]
        print(f"scaling (postgres+redis, {sc['jobs']} jobs): 1 worker "
              f"{statistics.median(sc['jobs_per_minute']['1']):.1f} jobs/min, 2 workers "
              f"{statistics.median(sc['jobs_per_minute']['2']):.1f} jobs/min, "
              f"ratio {sc['ratio']:.2f}")


def main() -> None:
    from common import STACKS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="abcd")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--scaling-jobs", type=int, default=40)
    parser.add_argument("--scaling-rounds", type=int, default=1)
    args = parser.parse_args()
    out = run(args.stacks.split(","), args.repeats, args.configs, args.scaling_jobs,
              args.scaling_rounds)
    report(out)
    print(json.dumps({"jobs": out}))


if __name__ == "__main__":
    main()
