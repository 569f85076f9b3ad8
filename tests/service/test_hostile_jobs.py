"""Jobs a hostile (or careless) client can ask for: too much memory, schedules and optimiser
settings that overflow. Refused up front with a 422 naming the field, or failed with a reason a
person can act on; never a crashed worker or "Internal error"."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .helpers import XOR, locs, make_dataset, make_job, problem, run


def _job(client: Any, auth: dict[str, str], ds_id: str, layers: list[dict[str, Any]],
         training: dict[str, Any]) -> Any:
    return client.post("/v1/jobs", headers=auth, json={
        "dataset_id": ds_id, "network": {"layers": layers}, "training": training})


def test_a_job_over_the_memory_budget_is_refused(client: Any, auth: dict[str, str]) -> None:
    """1,000,000 x 1 rows, 8192-2048-1, full batch: ~115 GiB of activations."""
    from service import auth as keys
    from service import datasets, db

    X = np.zeros((1_000_000, 1))
    with db.session_scope() as s:  # as a CSV upload would store it, without 30 s of parsing
        tenant = keys.authenticate(s, auth["Authorization"])
        row = datasets.store(s, tenant, datasets.Parsed("million", X, X.copy(), None, ["x"],
                                                        ["y"]))
        ds = {"id": row.id}
    layers = [{"units": 8192}, {"units": 2048}, {"units": 1}]
    err = problem(_job(client, auth, ds["id"], layers, {"batch_size": "full", "epochs": 1}),
                  422)
    assert locs(err) == [["training", "batch_size"]]
    detail = err["detail"]
    assert "MAX_TRAINING_MEMORY_BYTES" in detail and "4.0 GiB" in detail
    assert "GiB of memory" in detail and "batch buffers" in detail
    assert "batch_size of at most" in detail
    fits = int(detail.split("batch_size of at most ")[1].split()[0])
    assert 1 <= fits < 1_000_000
    # the batch it suggests is accepted
    resp = _job(client, auth, ds["id"], layers, {"batch_size": fits, "epochs": 1})
    assert resp.status_code == 202, resp.get_json()
    client.post(f"/v1/jobs/{resp.get_json()['id']}/cancel", headers=auth)


def test_the_memory_budget_is_configurable(app: Any, client: Any,
                                           auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    app.config["SETTINGS"].limits.max_training_memory_bytes = 2048
    err = problem(_job(client, auth, ds["id"], [{"units": 64}, {"units": 1}],
                       {"batch_size": "full"}), 422)
    assert "MAX_TRAINING_MEMORY_BYTES" in err["detail"] and "2.0 KiB" in err["detail"]
    assert locs(err) == [["network", "layers"]]  # the weights are what takes most here
    app.config["SETTINGS"].limits.max_training_memory_bytes = 0  # disabled
    assert _job(client, auth, ds["id"], [{"units": 64}, {"units": 1}], {}).status_code == 202


@pytest.mark.parametrize(("schedule", "field"), [
    ({"name": "inverse", "power": 1000}, "power"),
    ({"name": "step", "gamma": 1e10, "step_size": 1}, "gamma"),
    ({"name": "step", "gamma": 1e-10, "step_size": 2}, "gamma"),
    ({"name": "exponential", "gamma": 1e5}, "gamma"),
    ({"name": "exponential", "gamma": 1e-300}, "gamma"),
    ({"name": "plateau", "min_lr": 1e308}, "min_lr"),
])
def test_schedules_that_overflow_are_refused(client: Any, auth: dict[str, str],
                                             schedule: dict[str, Any], field: str) -> None:
    ds = make_dataset(client, auth)
    err = problem(_job(client, auth, ds["id"], [{"units": 2}, {"units": 1}],
                       {"lr_schedule": schedule, "epochs": 100}), 422)
    assert locs(err) == [["training", "lr_schedule", field]], err
    assert "epoch" in err["detail"] or "rise" in err["detail"]


def test_a_schedule_that_stays_in_range_is_accepted(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    for schedule in ({"name": "inverse", "power": 1000}, {"name": "exponential", "gamma": 2}):
        resp = _job(client, auth, ds["id"], [{"units": 2}, {"units": 1}],
                    {"lr_schedule": schedule, "epochs": 2})
        assert resp.status_code == 202, resp.get_json()


def _failure(app: Any, client: Any, auth: dict[str, str], training: dict[str, Any],
             network: dict[str, Any] | None = None) -> dict[str, Any] | None:
    ds = make_dataset(client, auth, XOR)
    body = {"dataset_id": ds["id"], "network": network or {"layers": [{"units": 4},
                                                                        {"units": 1}]},
            "training": {"epochs": 40, "batch_size": "full", "seed": 1, **training}}
    resp = client.post("/v1/jobs", headers=auth, json=body)
    assert resp.status_code == 202, resp.get_json()
    status = run(app, resp.get_json()["id"])
    job = client.get(f"/v1/jobs/{resp.get_json()['id']}", headers=auth).get_json()
    assert job["status"] == status
    return job["error"]


def test_a_huge_learning_rate_says_the_weights_overflowed(app: Any, client: Any,
                                                          auth: dict[str, str]) -> None:
    err = _failure(app, client, auth, {"optimizer": {"name": "sgd", "learning_rate": 1e308}})
    assert err is not None and err["title"] == "Training diverged"
    detail = err["detail"]
    assert "epoch 1" in detail and "weights overflowed" in detail, detail
    assert "learning rate 1e+308" in detail and "Lower the learning rate" in detail
    assert "the loss became 0." not in detail


@pytest.mark.parametrize(("training", "network"), [
    ({"optimizer": {"name": "sgd", "learning_rate": 1e300, "momentum": 0.99}}, None),
    ({"optimizer": {"name": "adam", "learning_rate": 1e308, "beta1": 0.999999}}, None),
    ({"optimizer": {"name": "rmsprop", "learning_rate": 1e308, "epsilon": 1e-300}}, None),
    ({"optimizer": {"name": "adagrad", "learning_rate": 1e308}}, None),
    ({"optimizer": {"name": "rprop", "learning_rate": 1e300, "step_max": 1e308,
                    "eta_plus": 1e300}}, None),
    ({"lr_schedule": {"name": "step", "gamma": 1e7, "step_size": 1}}, None),
    ({"lr_schedule": {"name": "exponential", "gamma": 1e7}}, None),
    ({"l2": 1e300}, None),
    ({"dtype": "float64", "optimizer": {"name": "sgd", "learning_rate": 1e200}}, None),
    ({}, {"layers": [{"units": 4}, {"units": 1}], "init": "uniform", "init_scale": 1e6}),
])
def test_overflowing_settings_fail_with_an_actionable_reason(
        app: Any, client: Any, auth: dict[str, str], training: dict[str, Any],
        network: dict[str, Any] | None) -> None:
    err = _failure(app, client, auth, training, network)
    if err is None:
        return  # it trained: fine too
    assert err["title"] == "Training diverged", err
    assert "Internal" not in err["title"] and "Traceback" not in err["detail"]
    assert "diverged at epoch" in err["detail"] and "Lower" in err["detail"], err


def test_a_normal_job_is_within_the_budget(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    make_job(client, auth, ds["id"], [{"units": 256}, {"units": 256}, {"units": 1}],
             {"batch_size": "full"})
