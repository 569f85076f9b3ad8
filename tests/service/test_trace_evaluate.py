"""``POST /v1/models/{id}/trace`` and ``/evaluate`` over HTTP: the numbers against the engine's
backward pass and scikit-learn, and every kind of bad input answered as a 4xx naming the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics
from sklearn.datasets import load_diabetes, load_wine

import backprop
from backprop.losses import loss as get_loss

from .helpers import BLOBS, QUICK, XOR, locs, make_dataset, problem, train


@pytest.fixture()
def regression(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    return train(app, client, auth, XOR, [{"units": 3, "activation": "tanh"}, {"units": 1}],
                 QUICK)


@pytest.fixture()
def classifier(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    return train(app, client, auth, BLOBS, [{"units": 4}, {"units": 3}], QUICK)


def weights(client: Any, auth: dict[str, str], model_id: str) -> backprop.Model:
    resp = client.get(f"/v1/models/{model_id}/weights", headers=auth)
    assert resp.status_code == 200
    return backprop.Model.from_bytes(resp.data)


def post(client: Any, auth: dict[str, str], model_id: str, what: str, body: Any) -> Any:
    return client.post(f"/v1/models/{model_id}/{what}", headers=auth, json=body)


@pytest.mark.parametrize("rows", [[[0, 1]], [[0, 0], [0, 1], [1, 0], [1, 1]]])
def test_trace_equals_the_engines_backward_and_central_differences(
        client: Any, auth: dict[str, str], regression: dict[str, Any], rows: list[Any]) -> None:
    targets = [[float(a != b)] for a, b in rows]
    resp = post(client, auth, regression["model_id"], "trace",
                {"inputs": rows, "targets": targets, "check": True})
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    model = weights(client, auth, regression["model_id"])
    X = model.standardizer.transform(np.asarray(rows, dtype=float))
    net = model.network.copy(np.float64)
    value, _ = net.loss_and_grad(X, np.asarray(targets), get_loss("mse"))
    assert out["loss"] == pytest.approx(value, rel=1e-12) and out["loss_function"] == "mse"
    assert out["rows"] == len(rows) and out["l2"] == 0.0
    np.testing.assert_allclose(out["inputs"], X, rtol=1e-15)
    assert [layer["activation"] for layer in out["layers"]] == ["tanh", "identity"]
    for layer, w, b, gw, gb in zip(out["layers"], net.weights, net.biases, net.weight_grads,
                                   net.bias_grads, strict=True):
        np.testing.assert_array_equal(layer["W"], w)
        np.testing.assert_array_equal(layer["b"], b)
        np.testing.assert_allclose(layer["grad_W"], gw, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer["grad_b"], gb, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer["numeric_grad_W"], gw, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(layer["numeric_grad_b"], gb, rtol=1e-6, atol=1e-9)
        assert layer["relative_error_W"] < 1e-6 and layer["relative_error_b"] < 1e-6
        assert np.shape(layer["z"]) == np.shape(layer["a"]) == np.shape(layer["delta"]) == (
            len(rows), len(b))
    assert out["check"]["max_relative_error"] < 1e-6


def test_trace_of_a_classifier_takes_labels(client: Any, auth: dict[str, str],
                                            classifier: dict[str, Any]) -> None:
    resp = post(client, auth, classifier["model_id"], "trace",
                {"inputs": BLOBS["inputs"][:3], "labels": ["a", "c", "b"]})
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()
    assert out["targets"] == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert out["loss_function"] == "cross_entropy" and out["check"] is None
    last = out["layers"][-1]
    np.testing.assert_allclose(last["delta"], (np.asarray(last["a"]) - out["targets"]) / 3,
                               rtol=1e-12, atol=1e-15)  # softmax + cross-entropy: (p - y) / m
    assert last["numeric_grad_W"] is None and last["relative_error_W"] is None


@pytest.mark.parametrize(("body", "status", "loc"), [
    ({"inputs": [[0, 1, 2]], "targets": [[1]]}, 422, ["inputs", 0]),
    ({"inputs": [[0, 1], [1]], "targets": [[1], [0]]}, 422, ["inputs", 1]),
    ({"inputs": [[0, 1]], "targets": [[1, 2]]}, 422, ["targets", 0]),
    ({"inputs": [[0, 1]], "targets": [[1], [0]]}, 422, ["targets"]),
    ({"inputs": [[0, 1]], "labels": ["a"]}, 422, ["labels"]),
    ({"inputs": [[0, 1]]}, 422, []),
    ({"inputs": [], "targets": [[1]]}, 422, ["inputs"]),
    ({"inputs": [[0, 1]], "targets": [[1]], "check": "yes"}, 422, ["check"]),
    ({"inputs": [[0, 1]], "targets": [[1]], "extra": 1}, 422, ["extra"]),
    ({"inputs": [[0, 1]] * 65, "targets": [[1]] * 65}, 413, ["inputs"]),
    ({"inputs": [[1e308, -1e308]], "targets": [[1]]}, 422, ["inputs", 0]),
])
def test_trace_bad_input(client: Any, auth: dict[str, str], regression: dict[str, Any],
                         body: dict[str, Any], status: int, loc: list[Any]) -> None:
    out = problem(post(client, auth, regression["model_id"], "trace", body), status)
    assert locs(out) == [loc]


@pytest.mark.parametrize(("body", "loc"), [
    ({"inputs": [[0, 0]], "labels": ["zebra"]}, ["labels", 0]),
    ({"inputs": [[0, 0], [1, 1]], "labels": ["a", 1]}, ["labels", 1]),
    ({"inputs": [[0, 0]], "targets": [[1, 0, 0]]}, ["targets"]),
])
def test_trace_bad_labels(client: Any, auth: dict[str, str], classifier: dict[str, Any],
                          body: dict[str, Any], loc: list[Any]) -> None:
    out = problem(post(client, auth, classifier["model_id"], "trace", body), 422)
    assert locs(out) == [loc]
    assert "'a'" in out["detail"] or "labels" in out["detail"]


def test_trace_limits_and_tenancy(app: Any, client: Any, auth: dict[str, str],
                                  regression: dict[str, Any], other_key: str) -> None:
    body = {"inputs": [[0, 1]], "targets": [[1]], "check": True}
    other = {"Authorization": f"Bearer {other_key}"}
    problem(client.post(f"/v1/models/{regression['model_id']}/trace", headers=other,
                        json=body), 404)
    problem(post(client, auth, "mdl_nope", "trace", body), 404)
    limits = app.config["SETTINGS"].limits
    limits.max_trace_check_parameters = 5  # the 2-3-1 net has 13
    out = problem(post(client, auth, regression["model_id"], "trace", body), 422)
    assert locs(out) == [["check"]] and "MAX_TRACE_CHECK_PARAMETERS" in out["detail"]
    limits.max_trace_parameters = 5
    out = problem(post(client, auth, regression["model_id"], "trace", body), 422)
    assert locs(out) == [["path", "model_id"]] and "MAX_TRACE_PARAMETERS" in out["detail"]


# -- evaluate ----------------------------------------------------------------------------------


def wine_body() -> dict[str, Any]:
    X, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y].tolist()
    return {"name": "wine", "inputs": X.tolist(), "labels": names}


def test_evaluate_wine_against_sklearn(app: Any, client: Any, auth: dict[str, str]) -> None:
    body = wine_body()
    job = train(app, client, auth, body, [{"units": 4}, {"units": 3}],
                {**QUICK, "epochs": 3, "validation_split": 0.2})
    ds_id = job["dataset_id"]
    resp = post(client, auth, job["model_id"], "evaluate", {"dataset_id": ds_id})
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    inline = post(client, auth, job["model_id"], "evaluate",
                  {"inputs": body["inputs"], "labels": body["labels"]}).get_json()
    assert inline == report
    model = weights(client, auth, job["model_id"])
    X = np.asarray(body["inputs"])
    probs = backprop.evaluation.outputs(model.network, model.standardizer.transform(X))
    classes = model.classes
    y_pred = [classes[i] for i in probs.argmax(axis=1)]
    y = body["labels"]
    assert report["rows"] == 178 and report["classes"] == classes
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(y, y_pred), abs=1e-9)
    assert report["macro_f1"] == pytest.approx(metrics.f1_score(y, y_pred, average="macro"),
                                               abs=1e-9)
    assert report["weighted_f1"] == pytest.approx(
        metrics.f1_score(y, y_pred, average="weighted"), abs=1e-9)
    assert report["confusion_matrix"]["matrix"] == metrics.confusion_matrix(
        y, y_pred, labels=classes).tolist()
    assert report["log_loss"] == pytest.approx(metrics.log_loss(y, y_proba=probs,
                                                                labels=classes), abs=1e-9)
    assert report["roc_auc"] == pytest.approx(metrics.roc_auc_score(
        y, probs, multi_class="ovr", labels=classes), abs=1e-9)
    # The stored validation report is the same computation on the validation rows.
    stored = client.get(f"/v1/models/{job['model_id']}", headers=auth).get_json()["evaluation"]
    assert stored["rows"] == round(178 * 0.2) and stored["task"] == "classification"


def test_evaluate_regression_against_sklearn(app: Any, client: Any,
                                             auth: dict[str, str]) -> None:
    X, y = load_diabetes(return_X_y=True)
    body = {"name": "diabetes", "inputs": X[:300].tolist(), "targets": [[v] for v in y[:300]]}
    job = train(app, client, auth, body, [{"units": 8}, {"units": 1}], {**QUICK, "epochs": 20})
    resp = post(client, auth, job["model_id"], "evaluate",
                {"inputs": X[300:].tolist(), "targets": [[v] for v in y[300:]]})
    assert resp.status_code == 200, resp.get_json()
    report = resp.get_json()
    model = weights(client, auth, job["model_id"])
    pred = backprop.evaluation.outputs(model.network, model.standardizer.transform(X[300:]))
    truth = y[300:]
    overall = report["overall"]
    assert overall["mse"] == pytest.approx(metrics.mean_squared_error(truth, pred), rel=1e-9)
    assert overall["rmse"] == pytest.approx(metrics.root_mean_squared_error(truth, pred),
                                            rel=1e-9)
    assert overall["mae"] == pytest.approx(metrics.mean_absolute_error(truth, pred), rel=1e-9)
    assert overall["r2"] == pytest.approx(metrics.r2_score(truth, pred), abs=1e-9)
    assert report["outputs"][0]["name"] == "y0" and report["rows"] == len(truth)


def test_evaluate_bad_input(app: Any, client: Any, auth: dict[str, str],
                            classifier: dict[str, Any], other_key: str) -> None:
    mid = classifier["model_id"]
    xor = make_dataset(client, auth, XOR)  # regression, 2 features
    wide = make_dataset(client, auth, {"name": "w", "inputs": [[0, 0, 0], [1, 1, 1]],
                                       "labels": ["a", "b"]})
    other_labels = make_dataset(client, auth, {**BLOBS, "labels": ["a", "b", "z"] * 3})
    theirs = make_dataset(client, {"Authorization": f"Bearer {other_key}"}, BLOBS)
    cases: list[tuple[dict[str, Any], int, list[Any]]] = [
        ({"dataset_id": "ds_nope"}, 422, ["dataset_id"]),
        ({"dataset_id": theirs["id"]}, 422, ["dataset_id"]),
        ({"dataset_id": xor["id"]}, 422, ["dataset_id"]),
        ({"dataset_id": wide["id"]}, 422, ["dataset_id"]),
        ({"dataset_id": other_labels["id"]}, 422, ["dataset_id"]),
        ({"inputs": [[0, 0, 1]], "labels": ["a"]}, 422, ["inputs", 0]),
        ({"inputs": [[0, 0]], "labels": ["q"]}, 422, ["labels", 0]),
        ({"inputs": [[0, 0]], "targets": [[1, 0, 0]]}, 422, ["targets"]),
        ({"inputs": [[0, 0], [1, 1]], "labels": ["a"]}, 422, ["labels"]),
        ({"inputs": [[0, 0]]}, 422, []),
        ({}, 422, []),
        ({"dataset_id": xor["id"], "inputs": [[0, 0]], "labels": ["a"]}, 422, []),
        ({"dataset_id": xor["id"], "labels": ["a"]}, 422, []),
    ]
    for body, status, loc in cases:
        out = problem(post(client, auth, mid, "evaluate", body), status)
        assert locs(out) == [loc], (body, out)
    assert "'z'" in problem(post(client, auth, mid, "evaluate",
                                 {"dataset_id": other_labels["id"]}), 422)["detail"]
    app.config["SETTINGS"].limits.max_evaluate_rows = 2
    out = problem(post(client, auth, mid, "evaluate",
                       {"inputs": [[0, 0]] * 3, "labels": ["a"] * 3}), 413)
    assert locs(out) == [["inputs"]] and "MAX_EVALUATE_ROWS" in out["detail"]
    ds = make_dataset(client, auth, BLOBS)
    out = problem(post(client, auth, mid, "evaluate", {"dataset_id": ds["id"]}), 413)
    assert locs(out) == [["dataset_id"]]
