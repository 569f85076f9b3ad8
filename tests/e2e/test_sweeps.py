"""A sweep on real processes: its trials run on the worker as ordinary jobs, the worker starts
the next ones as trials end, and the leaderboard's best is the best job."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .conftest import Stack


def _wait_sweep(stack: Stack, sweep_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sweep = stack.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            return sweep
        time.sleep(0.2)
    raise AssertionError(f"sweep {sweep_id} did not end: {sweep}\n{stack.logs('worker')}")


def test_sweep_runs_on_the_worker_and_ranks_its_trials(stack: Stack) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(120, 3))
    y = np.c_[np.sin(X[:, 0]) + 0.5 * X[:, 1]]
    ds = stack.post("/v1/datasets", json={"name": "wave", "inputs": X.round(5).tolist(),
                                          "targets": y.round(5).tolist()}).json()["id"]
    body = {"base": {"dataset_id": ds,
                     "network": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}]},
                     "training": {"epochs": 40, "batch_size": 16, "validation_split": 0.25,
                                  "optimizer": {"name": "adam", "learning_rate": 0.01}}},
            "space": {"training.optimizer.learning_rate": {"log_uniform": [1e-4, 0.1],
                                                           "points": 3},
                      "network.layers.0.units": {"choice": [2, 8]}},
            "strategy": "grid", "max_concurrent": 2, "seed": 4}
    r = stack.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.text
    sweep = _wait_sweep(stack, r.json()["id"])
    assert sweep["status"] == "succeeded", sweep
    assert sweep["trials"]["total"] == sweep["trials"]["succeeded"] == 6

    trials = stack.get(f"/v1/sweeps/{sweep['id']}/trials").json()["items"]
    jobs = [stack.get(f"/v1/jobs/{t['job_id']}").json() for t in trials]
    val_losses = [job["metrics"]["val_loss"] for job in jobs]
    assert val_losses == sorted(val_losses)
    assert sweep["best"]["job_id"] == jobs[0]["id"] == trials[0]["job_id"]
    assert sweep["best"]["value"] == min(val_losses)
    assert all(job["status"] == "succeeded" and job["model_id"] for job in jobs)
    # every trial used the sweep's seed, so trials differ only by their parameters
    assert {job["spec"]["training"]["seed"] for job in jobs} == {4}
    best = stack.post(f"/v1/models/{sweep['best']['model_id']}/predict",
                      json={"inputs": X[:2].tolist()})
    assert best.status_code == 200, best.text
