"""Diagnostics recorded by a job, its findings, its gradient-check report and the validation
report: stored in the database, read back over HTTP, equal to the engine's own run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop
from backprop.activations import ACTIVATIONS, Activation

from .helpers import BLOBS, QUICK, XOR, locs, make_dataset, make_job, problem, run, train, walk

WATCHED = {**QUICK, "epochs": 12, "validation_split": 0.34, "gradient_check": True,
           "diagnostics": {"every": 1}}
LAYER_FIELDS = {"layer", "activation", "grad_norm_W", "grad_norm_b", "weight_norm",
                "update_ratio", "activation_mean", "activation_std", "dead_fraction",
                "saturated_fraction"}


def engine_run(body: dict[str, Any], spec: dict[str, Any]) -> backprop.Model:
    """The same job run by the engine alone (same data, resolved spec and seed)."""
    y = body["labels"] if "labels" in body else np.asarray(body["targets"], dtype=float)
    return backprop.train(spec, np.asarray(body["inputs"], dtype=float), y)


def test_diagnostics_are_recorded_paginated_and_equal_to_the_engine(
        app: Any, client: Any, auth: dict[str, str]) -> None:
    job = train(app, client, auth, BLOBS, [{"units": 5, "activation": "relu"}, {"units": 3}],
                WATCHED)
    assert job["spec"]["training"]["diagnostics"] == {"every": 1}
    url = f"/v1/jobs/{job['id']}/diagnostics"
    items = walk(client, auth, url, 5)
    assert [e["epoch"] for e in items] == list(range(1, 13))
    for limit in (1, 12, 100):
        assert walk(client, auth, url, limit) == items
    assert all([r["layer"] for r in e["layers"]] == [0, 1] for e in items)
    assert all(set(r) == LAYER_FIELDS for e in items for r in e["layers"])

    model = engine_run(BLOBS, job["spec"])
    expected = [{"epoch": d["epoch"], "layers": d["layers"]} for d in model.diagnostics]
    assert len(expected) == len(items)
    for got, want in zip(items, expected, strict=True):
        for g, w in zip(got["layers"], want["layers"], strict=True):
            assert g.keys() == w.keys()
            for key, value in w.items():
                assert g[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float)
                                  else value), key

    # The job and the model keep the gradient-check report; the model the validation report.
    assert job["gradient_check"] == model.gradient_check
    assert job["gradient_check"]["passed"] is True and job["gradient_check"]["rows"] == 6
    stored = client.get(f"/v1/models/{job['model_id']}", headers=auth).get_json()
    assert stored["gradient_check"] == model.gradient_check
    assert stored["evaluation"] == model.evaluation
    assert stored["evaluation"]["rows"] == 3 and stored["evaluation"]["task"] == "classification"
    assert stored["warnings"] == job["warnings"] == model.warnings


def test_deep_sigmoid_job_warns_of_vanishing_gradients(app: Any, client: Any,
                                                       auth: dict[str, str]) -> None:
    layers = [{"units": 8, "activation": "sigmoid"}] * 8 + [{"units": 3}]
    job = train(app, client, auth, BLOBS, layers,
                {**QUICK, "optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 4,
                 "diagnostics": {"every": 2}})
    assert job["status"] == "succeeded"
    names = [w["name"] for w in job["warnings"]]
    assert "vanishing_gradients" in names
    found = next(w for w in job["warnings"] if w["name"] == "vanishing_gradients")
    assert found["threshold"] == 1e-3 and found["value"] < 1e-3 and found["rule"]
    model = client.get(f"/v1/models/{job['model_id']}", headers=auth).get_json()
    assert model["warnings"] == job["warnings"]
    assert model["evaluation"] is None and model["gradient_check"] is None
    items = walk(client, auth, f"/v1/jobs/{job['id']}/diagnostics", 100)
    assert [e["epoch"] for e in items] == [2, 4]


def test_a_job_without_diagnostics_has_none(app: Any, client: Any,
                                            auth: dict[str, str], other_key: str) -> None:
    job = train(app, client, auth, XOR, [{"units": 3}, {"units": 1}], QUICK)
    assert job["spec"]["training"]["diagnostics"] is None
    assert job["gradient_check"] is None and isinstance(job["warnings"], list)
    url = f"/v1/jobs/{job['id']}/diagnostics"
    assert client.get(url, headers=auth).get_json() == {"items": [], "next_cursor": None}
    problem(client.get(url, headers={"Authorization": f"Bearer {other_key}"}), 404)
    problem(client.get("/v1/jobs/job_nope/diagnostics", headers=auth), 404)
    body = problem(client.get(url + "?cursor=abc", headers=auth), 422)
    assert locs(body) == [["query", "cursor"]]
    body = problem(client.get(url + "?limit=0", headers=auth), 422)
    assert locs(body) == [["query", "limit"]]


def test_failing_gradient_check_keeps_the_report(app: Any, client: Any, auth: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    forward, backward = ACTIVATIONS["tanh"]

    def wrong(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
        backward(a, delta, tmp)
        delta *= 1.1

    monkeypatch.setitem(ACTIVATIONS, "tanh", Activation(forward, wrong))
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], [{"units": 3, "activation": "tanh"}, {"units": 1}],
                   {**QUICK, "gradient_check": True, "kernel": "numpy"})  # the patched one
    assert run(app, job["id"]) == "failed"
    done = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert done["error"]["title"] == "Gradient check failed"
    report = done["gradient_check"]
    assert report["passed"] is False and report["worst_layer"] == "layer0"
    assert "layer0" in done["error"]["detail"]
    assert f"{report['max_error']:.3g}" in done["error"]["detail"]
    assert report["tolerance"] == 1e-5 and report["rows"] == 4
    assert done["model_id"] is None


def test_redelivered_job_redoes_its_diagnostics(app: Any, client: Any,
                                                auth: dict[str, str]) -> None:
    """Rows a lost attempt wrote after the last checkpoint are dropped and written again."""
    from service import inspection
    from service.db import session_scope

    from ..workers.test_runner import _as_if_a_worker_was_lost

    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 6,
                                                    "diagnostics": {"every": 1}})
    _as_if_a_worker_was_lost(job["id"], attempts=1, recorded=3)
    fake = [{"layer": i, "activation": "tanh", **dict.fromkeys(inspection.COLUMNS, 9.0)}
            for i in range(2)]
    with session_scope() as s:
        s.add_all(inspection.records(job["id"], [(e, fake) for e in (1, 2, 3)]))
    assert run(app, job["id"]) == "succeeded"
    items = walk(client, auth, f"/v1/jobs/{job['id']}/diagnostics", 100)
    assert [e["epoch"] for e in items] == list(range(1, 7))
    assert all(r["weight_norm"] != 9.0 for e in items for r in e["layers"])


def test_too_many_diagnostics_rows_is_refused(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    body = {"dataset_id": ds["id"],
            "network": {"layers": [{"units": 2}, {"units": 2}, {"units": 1}]},
            "training": {"epochs": 100_000, "diagnostics": {"every": 1}}}  # 300,000 rows
    resp = client.post("/v1/jobs", headers=auth, json=body)
    problem_body = problem(resp, 422)
    assert locs(problem_body) == [["training", "diagnostics", "every"]]
    assert "MAX_DIAGNOSTIC_ROWS" in problem_body["detail"]
    body["training"]["diagnostics"] = {"every": 0}
    assert locs(problem(client.post("/v1/jobs", headers=auth, json=body), 422)) == [
        ["training", "diagnostics", "every"]]
    body["training"]["diagnostics"] = {"each": 1}
    assert locs(problem(client.post("/v1/jobs", headers=auth, json=body), 422)) == [
        ["training", "diagnostics", "each"]]


def test_diverged_job_says_its_gradients_exploded(app: Any, client: Any,
                                                  auth: dict[str, str]) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)) * 50
    data = {"name": "big", "inputs": X.tolist(),
            "targets": (X @ rng.normal(size=(3, 1))).tolist()}
    ds = make_dataset(client, auth, data)
    job = make_job(client, auth, ds["id"], [{"units": 8, "activation": "identity"},
                                            {"units": 1}],
                   {"optimizer": {"name": "sgd", "learning_rate": 3e-3}, "epochs": 50,
                    "batch_size": "full", "standardize": False, "seed": 0,
                    "diagnostics": {"every": 1}})
    assert run(app, job["id"]) == "failed"
    done = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert done["error"]["title"] == "Training diverged"
    (found,) = done["warnings"]
    assert found["name"] == "exploding_gradients" and found["value"] > found["threshold"]
