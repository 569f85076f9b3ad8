"""``/v1/jobs``: create, read, list, cancel, idempotency, spec errors and limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from .helpers import BLOBS, XOR, locs, make_dataset, make_job, problem, run, utc_time, walk

JOB_FIELDS = {"id", "status", "dataset_id", "spec", "progress", "metrics", "model_id", "error",
              "created_at", "started_at", "finished_at"}
TRAINING_FIELDS = {"loss", "optimizer", "epochs", "batch_size", "shuffle", "l2", "lr_schedule",
                   "validation_split", "early_stopping", "target_loss", "standardize", "seed",
                   "gradient_check"}
LAYERS = [{"units": 4}, {"units": 1}]


def job_body(dataset_id: str, layers: list[dict[str, Any]] | None = None,
             training: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"dataset_id": dataset_id,
                            "network": {"layers": LAYERS if layers is None else layers}}
    if training is not None:
        body["training"] = training
    return body


# -- create and read ---------------------------------------------------------------------------


def test_create_with_dataset_id(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    resp = client.post("/v1/jobs", headers=auth, json=job_body(ds["id"]))
    assert resp.status_code == 202, resp.get_json()
    job = resp.get_json()
    assert set(job) >= JOB_FIELDS
    assert resp.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["dataset_id"] == ds["id"]
    assert job["progress"] == {"epoch": 0, "epochs": 100, "fraction": 0.0, "eta_seconds": None}
    assert job["metrics"] is None
    assert job["model_id"] is None
    assert job["error"] is None
    utc_time(job["created_at"])
    assert job["started_at"] is None and job["finished_at"] is None
    got = client.get(resp.headers["Location"], headers=auth)
    assert got.status_code == 200
    assert got.get_json() == job


def test_spec_is_fully_resolved(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"], [{"units": 3, "activation": "relu"}, {"units": 1}])
    net, training = job["spec"]["network"], job["spec"]["training"]
    assert net["inputs"] == 2
    assert net["layers"] == [{"units": 3, "activation": "relu", "init": "he"},
                             {"units": 1, "activation": "identity", "init": "xavier"}]
    assert set(training) >= TRAINING_FIELDS
    assert training["loss"] == "mse"
    assert training["optimizer"]["name"] == "sgd"
    assert training["optimizer"]["learning_rate"] > 0
    assert {"momentum", "nesterov"} <= set(training["optimizer"])
    assert training["lr_schedule"]["name"] == "constant"
    assert isinstance(training["seed"], int)  # drawn once, so a rerun of the spec is exact
    assert training["epochs"] == 100
    assert training["standardize"] is True


def test_classification_defaults_follow_the_task(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, BLOBS)
    job = make_job(client, auth, ds["id"], [{"units": 4}, {"units": 3}])
    assert job["spec"]["network"]["layers"][-1]["activation"] == "softmax"
    assert job["spec"]["training"]["loss"] == "cross_entropy"


def test_given_fields_are_kept(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    training = {"optimizer": {"name": "sgd", "learning_rate": 0.3, "momentum": 0.9,
                              "nesterov": True},
                "epochs": 12, "batch_size": 2, "l2": 0.001, "seed": 5,
                "lr_schedule": {"name": "step", "step_size": 4, "gamma": 0.5},
                "early_stopping": {"patience": 3}}
    job = make_job(client, auth, ds["id"], training=training)
    t = job["spec"]["training"]
    assert t["optimizer"] == {"name": "sgd", "learning_rate": 0.3, "momentum": 0.9,
                              "nesterov": True}
    assert (t["epochs"], t["batch_size"], t["l2"], t["seed"]) == (12, 2, 0.001, 5)
    assert t["lr_schedule"]["step_size"] == 4 and t["lr_schedule"]["gamma"] == 0.5
    assert t["early_stopping"]["patience"] == 3
    assert job["progress"]["epochs"] == 12


def test_create_with_inline_dataset(client: Any, auth: dict[str, str]) -> None:
    resp = client.post("/v1/jobs", headers=auth,
                       json={"dataset": XOR, "network": {"layers": LAYERS}})
    assert resp.status_code == 202, resp.get_json()
    job = resp.get_json()
    ds = client.get(f"/v1/datasets/{job['dataset_id']}", headers=auth)
    assert ds.status_code == 200
    assert ds.get_json()["name"] == "xor"
    assert ds.get_json()["rows"] == 4


def test_inline_dataset_errors_point_into_the_dataset(client: Any, auth: dict[str, str]) -> None:
    body = {"dataset": {**XOR, "inputs": [[0, 0], [0, 1], [1], [1, 1]]},
            "network": {"layers": LAYERS}}
    err = problem(client.post("/v1/jobs", headers=auth, json=body), 422)
    assert locs(err) == [["dataset", "inputs", 2]]
    assert err["detail"].startswith("dataset.inputs.2:")
    body = {"dataset": {**XOR, "extra": 1}, "network": {"layers": LAYERS}}
    err = problem(client.post("/v1/jobs", headers=auth, json=body), 422)
    assert locs(err) == [["dataset", "extra"]]
    assert walk(client, auth, "/v1/datasets", 100) == []  # nothing half-made


def test_unknown_job(client: Any, auth: dict[str, str]) -> None:
    err = problem(client.get("/v1/jobs/job_nope", headers=auth), 404)
    assert "job_nope" in err["detail"]
    problem(client.post("/v1/jobs/job_nope/cancel", headers=auth), 404)
    problem(client.get("/v1/jobs/job_nope/history", headers=auth), 404)


# -- list --------------------------------------------------------------------------------------


def test_list_and_filter_by_status(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    ids = [make_job(client, auth, ds["id"])["id"] for _ in range(3)]
    assert client.post(f"/v1/jobs/{ids[1]}/cancel", headers=auth).status_code == 202

    every = walk(client, auth, "/v1/jobs", 2)
    assert sorted(j["id"] for j in every) == sorted(ids)
    queued = walk(client, auth, "/v1/jobs?status=queued", 1)
    assert sorted(j["id"] for j in queued) == sorted([ids[0], ids[2]])
    assert all(j["status"] == "queued" for j in queued)
    cancelled = walk(client, auth, "/v1/jobs?status=cancelled", 10)
    assert [j["id"] for j in cancelled] == [ids[1]]
    assert walk(client, auth, "/v1/jobs?status=running", 10) == []


def test_list_with_bad_status(client: Any, auth: dict[str, str]) -> None:
    err = problem(client.get("/v1/jobs?status=done", headers=auth), 422)
    assert locs(err) == [["query", "status"]]


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_queued_job(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"])
    resp = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["status"] == "cancelled"
    finished = utc_time(body["finished_at"])
    assert finished >= utc_time(body["created_at"])
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["status"] == "cancelled"
    err = problem(client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth), 409)
    assert "cancelled" in err["detail"]
    # The queued task, when a worker gets to it, does nothing.
    assert run(app, job["id"]) is None
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["status"] == "cancelled"


def test_cancel_finished_job_conflicts(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"], training={"epochs": 2, "batch_size": "full"})
    assert run(app, job["id"]) == "succeeded"
    err = problem(client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth), 409)
    assert "succeeded" in err["detail"]
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["status"] == "succeeded"


# -- idempotency -------------------------------------------------------------------------------


def test_idempotency_key_replays_the_first_job(client: Any, auth: dict[str, str]) -> None:
    body = {"dataset": XOR, "network": {"layers": LAYERS}}
    headers = {**auth, "Idempotency-Key": "order-66"}
    first = client.post("/v1/jobs", headers=headers, json=body)
    assert first.status_code == 202
    again = client.post("/v1/jobs", headers=headers, json=body)
    assert again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(walk(client, auth, "/v1/jobs", 100)) == 1
    assert len(walk(client, auth, "/v1/datasets", 100)) == 1  # the inline dataset too

    other = client.post("/v1/jobs", headers={**auth, "Idempotency-Key": "order-67"}, json=body)
    assert other.status_code == 202
    assert other.get_json()["id"] != first.get_json()["id"]
    plain = client.post("/v1/jobs", headers=auth, json=body)
    assert plain.status_code == 202
    assert len(walk(client, auth, "/v1/jobs", 100)) == 3


def test_idempotency_key_with_another_body(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    headers = {**auth, "Idempotency-Key": "k1"}
    assert client.post("/v1/jobs", headers=headers, json=job_body(ds["id"])).status_code == 202
    changed = job_body(ds["id"], training={"epochs": 5})
    err = problem(client.post("/v1/jobs", headers=headers, json=changed), 422)
    assert locs(err) == [["header", "Idempotency-Key"]]
    assert "Idempotency-Key" in err["detail"]
    assert len(walk(client, auth, "/v1/jobs", 100)) == 1


def test_idempotency_key_expires_after_24_hours(client: Any, auth: dict[str, str]) -> None:
    from sqlalchemy import update

    from service.db import session_scope
    from service.models import Job, utcnow

    ds = make_dataset(client, auth)
    headers = {**auth, "Idempotency-Key": "daily"}
    first = client.post("/v1/jobs", headers=headers, json=job_body(ds["id"])).get_json()
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == first["id"])
                  .values(created_at=utcnow() - timedelta(hours=25)))
    again = client.post("/v1/jobs", headers=headers, json=job_body(ds["id"]))
    assert again.status_code == 202
    assert again.get_json()["id"] != first["id"]
    assert client.post("/v1/jobs", headers=headers,
                       json=job_body(ds["id"])).get_json()["id"] == again.get_json()["id"]


def test_idempotency_keys_are_per_tenant(client: Any, auth: dict[str, str],
                                         other_key: str) -> None:
    other = {"Authorization": f"Bearer {other_key}"}
    body = {"dataset": XOR, "network": {"layers": LAYERS}}
    mine = client.post("/v1/jobs", headers={**auth, "Idempotency-Key": "same"}, json=body)
    theirs = client.post("/v1/jobs", headers={**other, "Idempotency-Key": "same"}, json=body)
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.get_json()["id"] != theirs.get_json()["id"]


# -- spec errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(("layers", "training", "loc", "needle"), [
    (LAYERS, {"optimizer": {"name": "sgdd"}}, ["training", "optimizer", "name"], "sgd"),
    ([{"units": 4}, {"units": 2}], None, ["network", "layers", 1, "units"], "2 units"),
    ([{"units": 4, "activation": "softmax"}, {"units": 1}], None,
     ["network", "layers", 0, "activation"], "output layer only"),
    (LAYERS, {"loss": "cross_entropy"}, ["training", "loss"], "cross_entropy"),
    (LAYERS, {"optimizer": {"name": "rprop"}, "batch_size": 2}, ["training", "batch_size"],
     "full"),
    (LAYERS, {"optimizer": {"name": "rprop"}, "batch_size": "full",
              "lr_schedule": {"name": "step"}}, ["training", "lr_schedule"], "constant"),
    (LAYERS, {"optimizer": {"name": "adam", "momentum": 0.9}},
     ["training", "optimizer", "momentum"], "adam"),
    (LAYERS, {"optimizer": {"learning_rate": -1}}, ["training", "optimizer", "learning_rate"],
     "greater than 0"),
    (LAYERS, {"optimizer": {"learning_rate": "fast"}},
     ["training", "optimizer", "learning_rate"], "number"),
    (LAYERS, {"epochs": 0}, ["training", "epochs"], "greater than or equal to 1"),
    (LAYERS, {"epochs": 2.5}, ["training", "epochs"], "integer"),
    (LAYERS, {"batch_size": 0}, ["training", "batch_size"], "'full'"),
    (LAYERS, {"batch_size": "half"}, ["training", "batch_size"], "'full'"),
    (LAYERS, {"validation_split": 0.1}, ["training", "validation_split"], "no validation"),
    (LAYERS, {"validation_split": 1.0}, ["training", "validation_split"], "less than 1"),
    (LAYERS, {"lr_schedule": {"name": "cosine"}}, ["training", "lr_schedule", "name"], "step"),
    (LAYERS, {"early_stopping": {"patience": 0}}, ["training", "early_stopping", "patience"],
     "greater than or equal to 1"),
    (LAYERS, {"seed": -1}, ["training", "seed"], "greater than or equal to 0"),
    (LAYERS, {"epoch": 10}, ["training", "epoch"], "Extra inputs"),
    (LAYERS, {"optimizer": {"name": "sgd", "lr": 0.1}}, ["training", "optimizer", "lr"],
     "Extra inputs"),
    ([{"units": 4, "activaton": "relu"}, {"units": 1}], None,
     ["network", "layers", 0, "activaton"], "Extra inputs"),
    ([{"units": 4, "activation": "swish"}, {"units": 1}], None,
     ["network", "layers", 0, "activation"], "tanh"),
    ([{"units": 0}, {"units": 1}], None, ["network", "layers", 0, "units"], "greater than"),
    ([], None, ["network", "layers"], "at least 1"),
])
def test_spec_errors(client: Any, auth: dict[str, str], layers: list[dict[str, Any]],
                     training: dict[str, Any] | None, loc: list[str | int], needle: str) -> None:
    ds = make_dataset(client, auth)
    err = problem(client.post("/v1/jobs", headers=auth, json=job_body(ds["id"], layers,
                                                                       training)), 422)
    assert loc in locs(err), err
    assert needle in err["detail"], err
    assert walk(client, auth, "/v1/jobs", 100) == []


@pytest.mark.parametrize(("body", "loc", "needle"), [
    ({"network": {"layers": LAYERS}}, [], "exactly one of 'dataset_id' or 'dataset'"),
    ({"dataset_id": "ds_x", "dataset": XOR, "network": {"layers": LAYERS}}, [],
     "exactly one of"),
    ({"dataset_id": "ds_nope", "network": {"layers": LAYERS}}, ["dataset_id"], "ds_nope"),
    ({"dataset_id": "ds_x"}, ["network"], "required"),
    ({"dataset_id": "ds_x", "network": {"layers": LAYERS}, "trainig": {}}, ["trainig"],
     "Extra inputs"),
    ({"dataset_id": "ds_x", "network": {"layers": LAYERS, "dropout": 0.5}},
     ["network", "dropout"], "Extra inputs"),
])
def test_job_body_errors(client: Any, auth: dict[str, str], body: dict[str, Any],
                         loc: list[str | int], needle: str) -> None:
    err = problem(client.post("/v1/jobs", headers=auth, json=body), 422)
    assert loc in locs(err), err
    assert needle in err["detail"], err


def test_classification_output_must_match_classes(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, BLOBS)
    err = problem(client.post("/v1/jobs", headers=auth,
                              json=job_body(ds["id"], [{"units": 4}, {"units": 2}])), 422)
    assert locs(err) == [["network", "layers", 1, "units"]]
    assert "3 classes" in err["detail"]


def test_someone_elses_dataset_id_is_unknown(client: Any, auth: dict[str, str],
                                             other_key: str) -> None:
    theirs = make_dataset(client, {"Authorization": f"Bearer {other_key}"})
    err = problem(client.post("/v1/jobs", headers=auth, json=job_body(theirs["id"])), 422)
    assert locs(err) == [["dataset_id"]]


# -- limits ------------------------------------------------------------------------------------


@pytest.fixture()
def small(database_url: str, tmp_path: Path) -> Any:
    """An app with small limits."""
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://", "max_layers": 2, "max_units": 8,
                      "max_parameters": 30, "max_epochs": 50, "max_epoch_rows": 149,
                      "max_rows": 3})
    app.config["TESTING"] = True
    return app.test_client()


@pytest.mark.parametrize(("layers", "training", "loc", "limit"), [
    ([{"units": 2}, {"units": 2}, {"units": 1}], None, ["network", "layers"], "MAX_LAYERS"),
    ([{"units": 9}, {"units": 1}], None, ["network", "layers", 0, "units"], "MAX_UNITS"),
    ([{"units": 8}, {"units": 1}], None, ["network", "layers"], "MAX_PARAMETERS"),
    (LAYERS, {"epochs": 51}, ["training", "epochs"], "MAX_EPOCHS"),
    (LAYERS, {"epochs": 50}, ["training", "epochs"], "MAX_EPOCH_ROWS"),
])
def test_limits(small: Any, auth: dict[str, str], layers: list[dict[str, Any]],
                training: dict[str, Any] | None, loc: list[str | int], limit: str) -> None:
    ds = make_dataset(small, auth, {**XOR, "inputs": XOR["inputs"][:3],
                                    "targets": XOR["targets"][:3]})
    err = problem(small.post("/v1/jobs", headers=auth, json=job_body(ds["id"], layers,
                                                                     training)), 422)
    assert locs(err) == [loc]
    assert limit in err["detail"], err


def test_within_limits_is_accepted(small: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(small, auth, {**XOR, "inputs": XOR["inputs"][:3],
                                    "targets": XOR["targets"][:3]})
    # 2 layers, 7 units, (2+1)*7 + (7+1)*1 = 29 parameters, 49 epochs x 3 rows = 147.
    resp = small.post("/v1/jobs", headers=auth,
                      json=job_body(ds["id"], [{"units": 7}, {"units": 1}], {"epochs": 49}))
    assert resp.status_code == 202, resp.get_json()


def test_inline_dataset_over_the_row_limit(small: Any, auth: dict[str, str]) -> None:
    err = problem(small.post("/v1/jobs", headers=auth,
                             json={"dataset": XOR, "network": {"layers": LAYERS}}), 413)
    assert "MAX_ROWS" in err["detail"]
    assert locs(err) == [["dataset", "inputs"]]


def test_concurrent_requests_with_one_idempotency_key_make_one_job(app: Any, client: Any,
                                                                   auth: dict[str, str]) -> None:
    import threading

    from .helpers import make_dataset

    ds = make_dataset(client, auth)
    body = {"dataset_id": ds["id"], "network": {"layers": [{"units": 3}, {"units": 1}]}}
    headers = {**auth, "Idempotency-Key": "same-key-race"}
    results: list[tuple[int, str]] = []

    def post() -> None:
        r = app.test_client().post("/v1/jobs", headers=headers, json=body)
        results.append((r.status_code, r.json.get("id", r.json.get("detail"))))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in results) == [200] * 5 + [202], results
    assert len({ident for _, ident in results}) == 1


def test_a_running_jobs_eta_counts_down_between_the_workers_beats() -> None:
    from service.jobs import eta_now
    from service.models import Job, utcnow

    job = Job(status="running", eta_seconds=10.0, heartbeat_at=utcnow() - timedelta(seconds=3))
    assert eta_now(job) == pytest.approx(7.0, abs=0.5)  # written 3 s ago: 7 s are left now
    job.heartbeat_at = utcnow() - timedelta(seconds=30)
    assert eta_now(job) == 0.0  # late, not negative
    job.heartbeat_at = utcnow() + timedelta(seconds=1)  # a worker's clock a little ahead
    assert eta_now(job) == 10.0
    job.status = "succeeded"
    assert eta_now(job) is None
