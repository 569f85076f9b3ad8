"""``continue_from`` over HTTP (jobs run in-process): 100 + 100 epochs are 200 bit for bit,
lineage on the job and model, what was kept said in the spec, the architecture fixed (422
naming the field), another dataset of the same width, and the model kept while a job needs it.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from tests.service.helpers import BLOBS, locs, make_dataset, make_job, problem, run, walk

LAYERS = [{"units": 6, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]
RECIPE: dict[str, Any] = {"optimizer": {"name": "adam", "learning_rate": 0.02},
                          "batch_size": 4, "validation_split": 0.25, "seed": 11}


def continue_job(client: Any, auth: dict[str, str], model_id: str,
                 **fields: Any) -> dict[str, Any]:
    body = {"continue_from": {"model_id": model_id}, **fields}
    resp = client.post("/v1/jobs", headers=auth, json=body)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def finished(app: Any, client: Any, auth: dict[str, str], job: dict[str, Any]
             ) -> dict[str, Any]:
    assert run(app, job["id"]) == "succeeded"
    return client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()


def weights(client: Any, auth: dict[str, str], model_id: str) -> np.ndarray:
    resp = client.get(f"/v1/models/{model_id}/weights", headers=auth)
    assert resp.status_code == 200
    return np.load(io.BytesIO(resp.data), allow_pickle=False)["params"]


@pytest.fixture()
def first(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    ds = make_dataset(client, auth, BLOBS)
    job = make_job(client, auth, ds["id"], LAYERS, {**RECIPE, "epochs": 40})
    return finished(app, client, auth, job)


def test_forty_then_forty_more_is_eighty_bit_for_bit(app: Any, client: Any,
                                                     auth: dict[str, str],
                                                     first: dict[str, Any]) -> None:
    more = continue_job(client, auth, first["model_id"], training={"epochs": 40})
    assert more["dataset_id"] == first["dataset_id"]  # the model's own by default
    assert more["parent_model_id"] == first["model_id"]
    assert more["progress"] == {"epoch": 40, "epochs": 80, "fraction": 0.0, "eta_seconds": None}
    assert more["spec"]["continue_from"] == {
        "model_id": first["model_id"], "job_id": first["id"], "start_epoch": 40,
        "optimizer_state": "kept", "schedule_state": "kept", "rng": "kept", "changed": []}
    assert more["spec"]["network"] == first["spec"]["network"]
    assert more["spec"]["training"] == first["spec"]["training"]
    more = finished(app, client, auth, more)
    whole = finished(app, client, auth, make_job(client, auth, first["dataset_id"], LAYERS,
                                                 {**RECIPE, "epochs": 80}))
    np.testing.assert_array_equal(weights(client, auth, more["model_id"]),
                                  weights(client, auth, whole["model_id"]))
    rows = walk(client, auth, f"/v1/jobs/{more['id']}/history", 100)
    assert [r["epoch"] for r in rows] == list(range(41, 81))
    strip = [{k: v for k, v in r.items() if k != "seconds"}
             for r in walk(client, auth, f"/v1/jobs/{whole['id']}/history", 100)]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in rows] == strip[40:]
    assert more["progress"]["fraction"] == 1.0 and more["metrics"] == whole["metrics"]
    model = client.get(f"/v1/models/{more['model_id']}", headers=auth).get_json()
    assert model["parent_model_id"] == first["model_id"]
    assert model["epochs_trained"] == 80 and model["partial"] is None and model["continuable"]
    # and on again from the continued model
    third = continue_job(client, auth, more["model_id"], training={"epochs": 5})
    assert third["spec"]["continue_from"]["start_epoch"] == 80
    assert finished(app, client, auth, third)["progress"]["epoch"] == 85


def test_a_new_optimiser_is_allowed_and_said(app: Any, client: Any, auth: dict[str, str],
                                            first: dict[str, Any]) -> None:
    more = continue_job(client, auth, first["model_id"],
                        training={"epochs": 5, "optimizer": {"name": "sgd",
                                                             "learning_rate": 0.01}})
    cf = more["spec"]["continue_from"]
    assert cf["optimizer_state"] == "fresh" and cf["changed"] == ["optimizer"]
    assert more["spec"]["training"]["optimizer"]["name"] == "sgd"
    assert more["spec"]["training"]["batch_size"] == 4  # the model's, not the default
    more = finished(app, client, auth, more)
    rows = walk(client, auth, f"/v1/jobs/{more['id']}/history", 100)
    assert rows[0]["epoch"] == 41 and rows[0]["learning_rate"] == 0.01


def test_a_new_learning_rate_keeps_the_optimiser_and_its_other_settings(
        client: Any, auth: dict[str, str], first: dict[str, Any]) -> None:
    more = continue_job(client, auth, first["model_id"],
                        training={"optimizer": {"learning_rate": 0.005}})
    opt = more["spec"]["training"]["optimizer"]
    assert opt == {**first["spec"]["training"]["optimizer"], "learning_rate": 0.005}
    assert opt["name"] == "adam" and more["spec"]["training"]["epochs"] == 40
    assert more["spec"]["continue_from"]["optimizer_state"] == "fresh"
    assert more["spec"]["continue_from"]["changed"] == ["optimizer"]


@pytest.mark.parametrize(("network", "loc", "needle"), [
    ({"layers": [{"units": 7}, {"units": 3}]}, ["network", "layers", 0, "units"], "7"),
    ({"layers": [{"units": 6, "activation": "relu"}, {"units": 3}]},
     ["network", "layers", 0, "activation"], "relu"),
    ({"layers": [{"units": 6}, {"units": 6}, {"units": 3}]}, ["network", "layers"], "3 layers"),
    # named as an architecture change, not by the model's loss it would no longer fit
    ({"layers": [{"units": 6}, {"units": 3, "activation": "sigmoid"}]},
     ["network", "layers", 1, "activation"], "sigmoid"),
])
def test_a_different_architecture_is_a_422_naming_it(client: Any, auth: dict[str, str],
                                                     first: dict[str, Any],
                                                     network: dict[str, Any], loc: list[Any],
                                                     needle: str) -> None:
    body = {"continue_from": {"model_id": first["model_id"]}, "network": network}
    err = problem(client.post("/v1/jobs", headers=auth, json=body), 422)
    assert locs(err) == [loc], err
    assert needle in err["detail"] and "continue from" in err["detail"]


def test_the_same_network_given_again_is_fine(client: Any, auth: dict[str, str],
                                              first: dict[str, Any]) -> None:
    job = continue_job(client, auth, first["model_id"], network={"layers": LAYERS})
    assert job["spec"]["continue_from"]["changed"] == []


@pytest.mark.parametrize(("training", "loc"), [
    ({"dtype": "float64"}, ["training", "dtype"]),
    ({"standardize": False}, ["training", "standardize"]),
])
def test_the_scaling_and_dtype_are_the_models(client: Any, auth: dict[str, str],
                                              first: dict[str, Any], training: dict[str, Any],
                                              loc: list[str]) -> None:
    body = {"continue_from": {"model_id": first["model_id"]}, "training": training}
    assert locs(problem(client.post("/v1/jobs", headers=auth, json=body), 422)) == [loc]


def test_another_dataset_must_fit_the_model(app: Any, client: Any, auth: dict[str, str],
                                            first: dict[str, Any]) -> None:
    fewer = {**BLOBS, "inputs": BLOBS["inputs"][:6], "labels": BLOBS["labels"][:6]}
    ds = make_dataset(client, auth, fewer)  # classes a and b only: fine
    job = continue_job(client, auth, first["model_id"], dataset_id=ds["id"],
                       training={"epochs": 3, "validation_split": 0.0})
    assert finished(app, client, auth, job)["model_id"]
    for bad, needle in [({**BLOBS, "labels": ["a", "b", "z"] * 3}, "'z'"),
                        ({"name": "wide", "inputs": [[1, 2, 3]] * 4, "labels": ["a", "b"] * 2},
                         "3 input columns"),
                        ({"name": "reg", "inputs": [[1, 2]] * 4, "targets": [[1]] * 4},
                         "regression")]:
        other = make_dataset(client, auth, bad)
        body = {"continue_from": {"model_id": first["model_id"]}, "dataset_id": other["id"]}
        err = problem(client.post("/v1/jobs", headers=auth, json=body), 422)
        assert locs(err) == [["dataset_id"]] and needle in err["detail"], err


def test_an_unknown_or_foreign_model_is_a_422(client: Any, auth: dict[str, str],
                                              other_key: str, first: dict[str, Any]) -> None:
    for model_id, key in [("mdl_nope", None), (first["model_id"], other_key)]:
        headers = {"Authorization": f"Bearer {key}"} if key else auth
        body = {"continue_from": {"model_id": model_id}}
        err = problem(client.post("/v1/jobs", headers=headers, json=body), 422)
        assert locs(err) == [["continue_from", "model_id"]] and model_id in err["detail"]
    err = problem(client.post("/v1/jobs", headers=auth,
                              json={"continue_from": {"model_id": first["model_id"],
                                                      "epochs": 3}}), 422)
    assert ["continue_from", "epochs"] in locs(err)


def test_a_model_being_continued_cannot_be_deleted(app: Any, client: Any, auth: dict[str, str],
                                                   first: dict[str, Any]) -> None:
    job = continue_job(client, auth, first["model_id"], training={"epochs": 2})
    err = problem(client.delete(f"/v1/models/{first['model_id']}", headers=auth), 409)
    assert job["id"] in err["detail"]
    finished(app, client, auth, job)
    assert client.delete(f"/v1/models/{first['model_id']}", headers=auth).status_code == 204


def test_a_sweep_cannot_continue_a_model(client: Any, auth: dict[str, str],
                                         first: dict[str, Any]) -> None:
    body = {"base": {"continue_from": {"model_id": first["model_id"]}},
            "space": {"training.optimizer.learning_rate": {"log_uniform": [1e-3, 1e-1]}},
            "max_trials": 2}
    err = problem(client.post("/v1/sweeps", headers=auth, json=body), 422)
    assert locs(err) == [["base", "continue_from"]]


def test_the_model_page_shows_lineage_and_a_partial_model(app: Any, client: Any,
                                                          auth: dict[str, str], key: str,
                                                          first: dict[str, Any]) -> None:
    from .test_pages import sign_in

    sign_in(client, key)
    more = continue_job(client, auth, first["model_id"], training={"epochs": 500})
    # a time limit no longer than its margin: the job stops after its first epoch
    app.config["SETTINGS"].task_soft_time_limit = 0.1
    assert run(app, more["id"]) == "failed"
    job = client.get(f"/v1/jobs/{more['id']}", headers=auth).get_json()
    model = client.get(f"/v1/models/{job['model_id']}", headers=auth).get_json()
    assert model["partial"] == {"reason": "time_limit", "epoch": 41, "epochs": 540}
    page = client.get(f"/models/{model['id']}").get_data(as_text=True)
    assert 'id="partial"' in page and "stopped at its time limit at epoch 41 of 540" in page
    assert f'href="/models/{first["model_id"]}"' in page and "Continued from" in page
