"""End to end on real processes: a job that records diagnostics and checks its gradients on the
worker, then its diagnostics, reports, a traced step and an evaluation over HTTP."""

from __future__ import annotations

import numpy as np
from pytest import approx

import backprop

from .conftest import Stack


def _blobs(n: int = 120) -> tuple[list[list[float]], list[str]]:
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [3.0, 0.5], [0.5, 3.0]])
    idx = rng.integers(0, 3, size=n)
    X = centres[idx] + rng.normal(scale=0.6, size=(n, 2))
    return X.tolist(), [["red", "green", "blue"][i] for i in idx]


def test_diagnostics_trace_and_evaluate(stack: Stack) -> None:
    X, labels = _blobs()
    r = stack.post("/v1/datasets", json={"name": "blobs", "inputs": X, "labels": labels})
    assert r.status_code == 201, r.text
    ds = r.json()
    spec = {"network": {"layers": [{"units": 6, "activation": "relu"}, {"units": 3}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.02}, "epochs": 30,
                         "batch_size": 16, "seed": 5, "validation_split": 0.25,
                         "gradient_check": True, "diagnostics": {"every": 3}}}
    r = stack.post("/v1/jobs", json={"dataset_id": ds["id"], **spec})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["gradient_check"]["passed"] is True
    assert isinstance(job["warnings"], list)

    items, cursor = [], None
    while True:
        page = stack.get(f"/v1/jobs/{job['id']}/diagnostics",
                         params={"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["epoch"] for e in items] == list(range(3, 31, 3))
    # The worker's figures are the engine's own, run here on the same data and spec (equal up
    # to the last bits a different BLAS thread count may change).
    local = backprop.train(job["spec"], np.asarray(X), labels)
    for got, want in zip(items, local.diagnostics, strict=True):
        assert got["epoch"] == want["epoch"]
        for g, w in zip(got["layers"], want["layers"], strict=True):
            assert g["grad_norm_W"] == approx(w["grad_norm_W"], rel=1e-6)
            assert g["weight_norm"] == approx(w["weight_norm"], rel=1e-6)
            assert g["dead_fraction"] == w["dead_fraction"]

    model = stack.get(f"/v1/models/{job['model_id']}").json()
    assert model["gradient_check"] == job["gradient_check"]
    assert model["warnings"] == job["warnings"]
    assert model["evaluation"]["rows"] == 30
    assert model["evaluation"]["log_loss"] == approx(local.evaluation["log_loss"], rel=1e-6)
    assert model["evaluation"]["confusion_matrix"] == local.evaluation["confusion_matrix"]

    r = stack.post(f"/v1/models/{job['model_id']}/trace",
                   json={"inputs": X[:2], "labels": labels[:2], "check": True})
    assert r.status_code == 200, r.text
    trace = r.json()
    assert trace["check"]["max_relative_error"] < 1e-6
    assert [len(layer["z"]) for layer in trace["layers"]] == [2, 2]

    r = stack.post(f"/v1/models/{job['model_id']}/evaluate", json={"dataset_id": ds["id"]})
    assert r.status_code == 200, r.text
    report, want = r.json(), backprop.evaluate(local, np.asarray(X), labels)
    assert report["confusion_matrix"] == want["confusion_matrix"]
    assert report["log_loss"] == approx(want["log_loss"], rel=1e-6)
    assert report["roc_auc"] == approx(want["roc_auc"], rel=1e-6)

    r = stack.post(f"/v1/models/{job['model_id']}/trace",
                   json={"inputs": [[0.0, 1.0, 2.0]], "labels": ["red"]})
    assert r.status_code == 422
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json()["errors"] == [{"loc": ["inputs", 0],
                                   "msg": "row 0 has 3 values; the model takes 2 inputs"}]
