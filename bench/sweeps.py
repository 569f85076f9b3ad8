"""Sweep benchmark on PostgreSQL + Redis: the same 16-trial sweep drained by 1 and by 2 worker
processes (wall-clock ratio), and the median pruner against no pruner (total epoch-time and the
best trial found).

    .venv/bin/python bench/sweeps.py [--trials 16] [--epochs 1500]

Each worker process runs one trial at a time with one BLAS thread. Trials are CPU-bound
(64-32-10 tanh, batch 32, on 1,500 synthetic digit-like rows). Before each stack's measured
sweeps a small sweep warms the workers up (dataset cache) and the script waits for the machine
to be idle (each new worker process compiles or loads the compiled kernel in a background
thread, seconds of CPU that would otherwise take the second core from the trials), so that
neither side counts a cold start. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime
from typing import Any

import numpy as np
from common import session, stack


def _dataset(rows: int = 1500, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 64)) * 2
    labels = rng.integers(0, 10, rows)
    X = centres[labels] + rng.normal(scale=2.5, size=(rows, 64))
    return {"name": "blobs64", "inputs": X.round(3).tolist(), "labels": labels.tolist()}


def _wait_idle(most: float = 120.0) -> float:
    """Wait until the machine's CPUs are >= 85 % idle over a second (the new workers have
    compiled or loaded their kernels), at most ``most`` seconds; returns the seconds waited."""
    def times() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)

    t0 = time.monotonic()
    while time.monotonic() - t0 < most:
        idle0, total0 = times()
        time.sleep(1.0)
        idle1, total1 = times()
        if (idle1 - idle0) >= 0.85 * max(1, total1 - total0):
            break
    return time.monotonic() - t0


def _sweep_body(dataset_id: str, trials: int, epochs: int, concurrent: int,
                pruner: dict[str, Any] | None) -> dict[str, Any]:
    return {"base": {"dataset_id": dataset_id,
                     "network": {"layers": [{"units": 32, "activation": "tanh"},
                                            {"units": 10}]},
                     "training": {"epochs": epochs, "batch_size": 32, "validation_split": 0.2,
                                  "optimizer": {"name": "sgd", "momentum": 0.9}}},
            "space": {"training.optimizer.learning_rate": {"log_uniform": [1e-5, 0.3]}},
            "strategy": "random", "metric": "val_loss", "max_trials": trials,
            "max_concurrent": concurrent, "seed": 1, "pruner": pruner}


def _run_sweep(base: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    http = session(key)
    r = http.post(f"{base}/v1/sweeps", json=body, timeout=60)
    r.raise_for_status()
    sweep_id = r.json()["id"]
    while True:
        sweep = http.get(f"{base}/v1/sweeps/{sweep_id}", timeout=30).json()
        if sweep["status"] != "running":
            break
        time.sleep(0.2)
    trials = http.get(f"{base}/v1/sweeps/{sweep_id}/trials?limit=100", timeout=30).json()["items"]
    epoch_seconds = 0.0
    for t in trials:
        rows = http.get(f"{base}/v1/jobs/{t['job_id']}/history?limit=1000", timeout=30).json()
        epoch_seconds += sum(row["seconds"] for row in rows["items"])
    wall = (datetime.fromisoformat(sweep["finished_at"])
            - datetime.fromisoformat(sweep["created_at"])).total_seconds()
    return {"status": sweep["status"], "wall_seconds": wall, "epoch_seconds": epoch_seconds,
            "best": sweep["best"]["value"] if sweep["best"] else None,
            "pruned": sweep["trials"]["pruned"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1500)
    args = ap.parse_args()
    env = {"BLAS_THREADS": "1", "REAPER_INTERVAL_SECONDS": "1"}
    results: dict[str, Any] = {}
    with stack("postgres+redis", **env) as (base, keys, _log):
        http = session(keys[0])
        ds = http.post(f"{base}/v1/datasets", json=_dataset(), timeout=60).json()["id"]
        _run_sweep(base, keys[0], _sweep_body(ds, 1, 5, 1, None))  # warm-up
        results["idle_wait_one"] = _wait_idle()
        results["one_worker"] = _run_sweep(
            base, keys[0], _sweep_body(ds, args.trials, args.epochs, 1, None))
    with stack("postgres+redis", workers=2, **env) as (base, keys, _log):
        http = session(keys[0])
        ds = http.post(f"{base}/v1/datasets", json=_dataset(), timeout=60).json()["id"]
        _run_sweep(base, keys[0], _sweep_body(ds, 4, 5, 2, None))  # warm-up
        results["idle_wait_two"] = _wait_idle()
        results["two_workers"] = _run_sweep(
            base, keys[0], _sweep_body(ds, args.trials, args.epochs, 2, None))
        results["two_workers_median_pruner"] = _run_sweep(
            base, keys[0], _sweep_body(ds, args.trials, args.epochs, 2,
                                       {"name": "median", "warmup_epochs": 5,
                                        "min_trials": 3}))
    one, two = results["one_worker"], results["two_workers"]
    pruned = results["two_workers_median_pruner"]
    results["speedup_two_workers"] = one["wall_seconds"] / two["wall_seconds"]
    results["pruner_epoch_time_ratio"] = pruned["epoch_seconds"] / two["epoch_seconds"]
    results["pruner_best_vs_no_pruner"] = pruned["best"] / two["best"]
    print(f"1 worker: {one['wall_seconds']:.1f} s; 2 workers: {two['wall_seconds']:.1f} s; "
          f"speed-up {results['speedup_two_workers']:.2f}x")
    print(f"median pruner: {pruned['pruned']} of {args.trials} trials pruned, epoch-time "
          f"{results['pruner_epoch_time_ratio']:.2f} of no pruner, best val_loss "
          f"{pruned['best']:.4f} vs {two['best']:.4f} "
          f"({results['pruner_best_vs_no_pruner']:.3f})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
