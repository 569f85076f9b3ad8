"""``/v1/models``: reading, predicting, downloading the weights, deleting."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from .helpers import BLOBS, QUICK, XOR, locs, problem, train, utc_time, walk

MODEL_FIELDS = {"id", "job_id", "dataset_id", "spec", "inputs", "outputs", "task", "classes",
                "feature_names", "metrics", "evaluation", "gradient_check", "warnings",
                "epochs_trained", "parent_model_id", "partial", "continuable", "created_at"}


@pytest.fixture()
def regression(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    """A finished regression job (XOR, 2 -> 4 tanh -> 1 identity)."""
    return train(app, client, auth, XOR, [{"units": 4}, {"units": 1}], QUICK)


@pytest.fixture()
def classifier(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    """A finished 3-class job on well separated blobs."""
    return train(app, client, auth, BLOBS, [{"units": 6}, {"units": 3}],
                 {**QUICK, "epochs": 80})


def predict(client: Any, auth: dict[str, str], model_id: str, inputs: Any) -> Any:
    return client.post(f"/v1/models/{model_id}/predict", headers=auth, json={"inputs": inputs})


def test_get_model(client: Any, auth: dict[str, str], regression: dict[str, Any]) -> None:
    resp = client.get(f"/v1/models/{regression['model_id']}", headers=auth)
    assert resp.status_code == 200
    model = resp.get_json()
    assert set(model) == MODEL_FIELDS
    assert model["id"] == regression["model_id"]
    assert model["job_id"] == regression["id"]
    assert model["dataset_id"] == regression["dataset_id"]
    assert model["spec"] == regression["spec"]
    assert (model["inputs"], model["outputs"]) == (2, 1)
    assert model["task"] == "regression" and model["classes"] is None
    assert model["feature_names"] == ["x0", "x1"]
    assert model["metrics"]["loss"] == regression["metrics"]["loss"]
    utc_time(model["created_at"])


def test_list_models(app: Any, client: Any, auth: dict[str, str],
                     regression: dict[str, Any], classifier: dict[str, Any]) -> None:
    third = train(app, client, auth, XOR, [{"units": 2}, {"units": 1}], {**QUICK, "epochs": 3})
    wanted = {regression["model_id"], classifier["model_id"], third["model_id"]}
    for limit in (1, 2, 50):
        items = walk(client, auth, "/v1/models", limit)
        assert [m["id"] for m in items] == sorted(wanted, reverse=True)
        assert all(set(m) == MODEL_FIELDS for m in items)


def test_predict_regression(client: Any, auth: dict[str, str],
                            regression: dict[str, Any]) -> None:
    resp = predict(client, auth, regression["model_id"], [[0, 0], [0, 1], [0.5, 0.5]])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"outputs"}
    assert np.asarray(body["outputs"]).shape == (3, 1)
    assert np.isfinite(body["outputs"]).all()
    # Deterministic: the same rows give the same outputs (also from the model cache).
    again = predict(client, auth, regression["model_id"], [[0, 0], [0, 1], [0.5, 0.5]])
    assert again.get_json() == body


def test_predict_classification(client: Any, auth: dict[str, str],
                                classifier: dict[str, Any]) -> None:
    resp = predict(client, auth, classifier["model_id"], BLOBS["inputs"])
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"outputs", "probabilities", "labels", "classes"}
    probs = np.asarray(body["probabilities"])
    assert probs.shape == (9, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    assert body["classes"] == ["a", "b", "c"]
    assert body["labels"] == [body["classes"][i] for i in probs.argmax(axis=1)]
    assert body["labels"] == BLOBS["labels"]  # the blobs are far apart: learnt exactly
    assert body["outputs"] == body["probabilities"]  # a softmax output layer is the probabilities


def test_predict_binary_classification(app: Any, client: Any, auth: dict[str, str]) -> None:
    data = {"name": "bin", "inputs": [[0], [0.1], [0.2], [5], [5.1], [5.2]],
            "labels": [0, 0, 0, 1, 1, 1]}
    job = train(app, client, auth, data, [{"units": 3}, {"units": 1}], {**QUICK, "epochs": 60})
    assert job["spec"]["network"]["layers"][-1]["activation"] == "sigmoid"
    body = predict(client, auth, job["model_id"], [[0.05], [5.15]]).get_json()
    probs = np.asarray(body["probabilities"])
    assert probs.shape == (2, 2)  # one sigmoid unit, both classes' probabilities
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert body["classes"] == [0, 1]
    assert body["labels"] == [0, 1]  # integer classes stay integers
    # outputs: the one unit itself, p = the probability of classes[1]
    outputs = np.asarray(body["outputs"])
    assert outputs.shape == (2, 1)
    assert np.array_equal(outputs[:, 0], probs[:, 1])
    assert outputs[0, 0] < 0.5 < outputs[1, 0]


def test_predict_shape_is_documented(client: Any) -> None:
    doc = client.get("/openapi.json").get_json()
    op = doc["paths"]["/v1/models/{model_id}/predict"]["post"]
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"outputs", "probabilities", "labels", "classes"}
    assert schema["required"] == ["outputs"]
    assert "classes" in schema["properties"]["probabilities"]["description"]
    assert "sigmoid" in schema["properties"]["outputs"]["description"]


@pytest.mark.parametrize(("inputs", "loc", "needle"), [
    ([[0, 0], [0, 1, 2]], ["inputs", 1], "row 1"),
    ([[0, 0], [0, 1], [1]], ["inputs", 2], "row 2"),
    ([[]], ["inputs", 0], "row 0"),
    ([[0, 1, 2]] * 3, ["inputs", 0], "row 0"),
    ([[0, 1]] * 57 + [[0]] + [[0, 1]] * 10, ["inputs", 57], "row 57"),
    ([[0, "a"]], ["inputs", 0, 1], "number"),
    ([[0, None]], ["inputs", 0, 1], "number"),
    ([[0, True]], ["inputs", 0, 1], "number"),
    ([0, 1], ["inputs", 0], "list"),
    ([], ["inputs"], "at least 1"),
    ("rows", ["inputs"], "list"),
])
def test_predict_errors(client: Any, auth: dict[str, str], regression: dict[str, Any],
                        inputs: Any, loc: list[str | int], needle: str) -> None:
    err = problem(predict(client, auth, regression["model_id"], inputs), 422)
    assert locs(err)[0] == loc, err
    assert needle in err["detail"], err


def test_predict_unknown_field(client: Any, auth: dict[str, str],
                               regression: dict[str, Any]) -> None:
    err = problem(client.post(f"/v1/models/{regression['model_id']}/predict", headers=auth,
                              json={"inputs": [[0, 0]], "input": [[1, 1]]}), 422)
    assert locs(err) == [["input"]]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_predict_non_finite_json(client: Any, auth: dict[str, str], regression: dict[str, Any],
                                 token: str) -> None:
    err = problem(client.post(f"/v1/models/{regression['model_id']}/predict", headers=auth,
                              data=f'{{"inputs": [[0, {token}]]}}',
                              content_type="application/json"), 400)
    assert "JSON" in err["detail"]


def test_predict_far_outside_the_training_range(client: Any, auth: dict[str, str],
                                                regression: dict[str, Any]) -> None:
    # Overflows to a non-finite output: a 422 naming the row, not a 500 or a NaN in the answer.
    err = problem(predict(client, auth, regression["model_id"], [[0, 0], [1e308, -1e308]]), 422)
    assert locs(err) == [["inputs", 1]]
    assert "row 1" in err["detail"]


def test_predict_too_many_rows(app: Any, client: Any, auth: dict[str, str],
                               regression: dict[str, Any]) -> None:
    app.config["SETTINGS"].limits.max_predict_rows = 3
    assert predict(client, auth, regression["model_id"], [[0, 0]] * 3).status_code == 200
    err = problem(predict(client, auth, regression["model_id"], [[0, 0]] * 4), 413)
    assert "MAX_PREDICT_ROWS" in err["detail"]
    assert "4" in err["detail"]


def test_weights_download(client: Any, auth: dict[str, str], regression: dict[str, Any]) -> None:
    model_id = regression["model_id"]
    resp = client.get(f"/v1/models/{model_id}/weights", headers=auth)
    assert resp.status_code == 200
    assert resp.mimetype == "application/octet-stream"
    assert f'filename="{model_id}.npz"' in resp.headers["Content-Disposition"]
    with np.load(io.BytesIO(resp.get_data()), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert {"params", "W0", "b0", "W1", "b1", "mean", "scale", "meta"} <= set(arrays)
    assert all(a.dtype != object for a in arrays.values())
    meta = json.loads(str(arrays["meta"]))
    assert meta["spec"] == regression["spec"]
    assert arrays["W0"].shape == (2, 4) and arrays["W1"].shape == (4, 1)

    # The file alone reproduces the service's predictions.
    X = np.array([[0.0, 0.0], [0.0, 1.0], [0.3, 0.8]])
    hidden = np.tanh((X - arrays["mean"]) / arrays["scale"] @ arrays["W0"] + arrays["b0"])
    mine = hidden @ arrays["W1"] + arrays["b1"]
    theirs = predict(client, auth, model_id, X.tolist()).get_json()["outputs"]
    assert np.allclose(mine, theirs, atol=1e-5)


def test_classifier_weights_carry_the_classes(client: Any, auth: dict[str, str],
                                              classifier: dict[str, Any]) -> None:
    resp = client.get(f"/v1/models/{classifier['model_id']}/weights", headers=auth)
    with np.load(io.BytesIO(resp.get_data()), allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
    assert meta["classes"] == ["a", "b", "c"]
    assert meta["feature_names"] == ["u", "v"]


def test_delete_model(client: Any, auth: dict[str, str], regression: dict[str, Any]) -> None:
    model_id = regression["model_id"]
    assert predict(client, auth, model_id, [[0, 0]]).status_code == 200  # now cached
    resp = client.delete(f"/v1/models/{model_id}", headers=auth)
    assert resp.status_code == 204
    assert resp.get_data() == b""
    problem(client.get(f"/v1/models/{model_id}", headers=auth), 404)
    problem(predict(client, auth, model_id, [[0, 0]]), 404)
    problem(client.get(f"/v1/models/{model_id}/weights", headers=auth), 404)
    problem(client.delete(f"/v1/models/{model_id}", headers=auth), 404)
    assert walk(client, auth, "/v1/models", 100) == []
    # The job that made it is still there.
    assert client.get(f"/v1/jobs/{regression['id']}", headers=auth).status_code == 200


def test_unknown_model(client: Any, auth: dict[str, str]) -> None:
    err = problem(client.get("/v1/models/mdl_nope", headers=auth), 404)
    assert "mdl_nope" in err["detail"]
    problem(predict(client, auth, "mdl_nope", [[0, 0]]), 404)
