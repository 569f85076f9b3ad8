"""End to end on real processes: upload, train on the worker, poll, read history, predict."""

from __future__ import annotations

import io

import numpy as np

import backprop

from .conftest import Stack

XOR_SPEC = {
    "network": {"layers": [{"units": 4, "activation": "tanh"},
                           {"units": 1, "activation": "sigmoid"}]},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 400,
                 "batch_size": "full", "standardize": False, "seed": 3},
}


def test_xor_end_to_end(stack: Stack) -> None:
    r = stack.post("/v1/datasets", json={"name": "xor", "inputs": [[0, 0], [0, 1], [1, 0],
                                                                     [1, 1]],
                                         "targets": [[0], [1], [1], [0]]})
    assert r.status_code == 201, r.text
    r = stack.post("/v1/jobs", json={"dataset_id": r.json()["id"], **XOR_SPEC})
    assert r.status_code == 202, r.text
    assert r.headers["Location"].endswith(r.json()["id"])
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["epoch"] == 400 and job["attempts"] == 1

    history = []
    cursor = None
    while True:
        params = {"limit": 150, **({"cursor": cursor} if cursor else {})}
        page = stack.get(f"/v1/jobs/{job['id']}/history", params=params).json()
        history += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [row["epoch"] for row in history] == list(range(1, 401))
    assert history[-1]["loss"] < history[0]["loss"]

    r = stack.post(f"/v1/models/{job['model_id']}/predict",
                   json={"inputs": [[0, 0], [0, 1], [1, 0], [1, 1]]})
    assert r.status_code == 200, r.text
    assert [round(o[0]) for o in r.json()["outputs"]] == [0, 1, 1, 0]


def _three_classes(n: int = 300) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0.0, 1.0], [2.5, 0.5, -1.0], [0.5, 2.5, 0.0]])
    names = ["setosa", "versicolor", "virginica"]
    idx = rng.integers(0, 3, size=n)
    X = centres[idx] + rng.normal(scale=0.9, size=(n, 3))
    return X, [names[i] for i in idx]


def test_three_class_csv_matches_the_engine(stack: Stack) -> None:
    X, labels = _three_classes()
    buf = io.StringIO()
    buf.write("sepal,petal,stem,species\n")
    for row, label in zip(X, labels, strict=True):
        buf.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    r = stack.post("/v1/datasets", params={"name": "three", "target": "species"},
                   data=buf.getvalue().encode(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["task"] == "classification" and ds["classes"] == sorted(set(labels))
    spec = {"network": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 3}]},
            "training": {"optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
                         "epochs": 60, "batch_size": 16, "validation_split": 0.2, "seed": 11}}
    r = stack.post("/v1/jobs", json={"dataset_id": ds["id"], **spec})
    assert r.status_code == 202, r.text
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job

    direct = backprop.train(spec, X, labels, task="classification")
    assert job["metrics"]["val_accuracy"] == direct.metrics["val_accuracy"]
    assert direct.metrics["val_accuracy"] > 0.85

    model = stack.get(f"/v1/models/{job['model_id']}").json()
    assert model["classes"] == ["setosa", "versicolor", "virginica"]
    assert model["feature_names"] == ["sepal", "petal", "stem"]
    r = stack.post(f"/v1/models/{job['model_id']}/predict", json={"inputs": X[:50].tolist()})
    body = r.json()
    assert body["labels"] == direct.predict_labels(X[:50])
    np.testing.assert_allclose(body["probabilities"], direct.predict(X[:50]), atol=1e-6)
    assert np.allclose(np.sum(body["probabilities"], axis=1), 1.0, atol=1e-5)


def test_weights_download_is_portable(stack: Stack) -> None:
    jobs = stack.get("/v1/jobs", params={"status": "succeeded", "limit": 1}).json()["items"]
    assert jobs, "an earlier test trains a model"
    r = stack.get(f"/v1/models/{jobs[0]['model_id']}/weights")
    assert r.status_code == 200
    with np.load(io.BytesIO(r.content), allow_pickle=False) as npz:
        assert {"params", "W0", "b0", "meta"} <= set(npz.files)
