"""``workers.runner.run_job`` in-process, against the real database and the API's view of it."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from tests.service.helpers import (
    BLOBS,
    QUICK,
    XOR,
    locs,
    make_dataset,
    make_job,
    problem,
    run,
    utc_time,
    walk,
)

HISTORY_FIELDS = {"epoch", "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
                  "seconds"}


def get_job(client: Any, auth: dict[str, str], job_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/jobs/{job_id}", headers=auth)
    assert resp.status_code == 200
    return resp.get_json()


def test_xor_job_succeeds(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], [{"units": 4}, {"units": 1}], QUICK)
    assert run(app, job["id"]) == "succeeded"

    done = get_job(client, auth, job["id"])
    assert done["status"] == "succeeded"
    assert done["error"] is None
    assert done["progress"]["epoch"] == done["progress"]["epochs"] == QUICK["epochs"]
    assert done["progress"]["fraction"] == 1.0
    assert done["progress"]["eta_seconds"] is None
    created, started, finished = (utc_time(done[k]) for k in
                                  ("created_at", "started_at", "finished_at"))
    assert created <= started <= finished
    assert set(done["metrics"]) >= {"loss", "val_loss", "accuracy", "val_accuracy"}
    assert math.isfinite(done["metrics"]["loss"])

    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    assert [row["epoch"] for row in history] == list(range(1, QUICK["epochs"] + 1))
    assert all(set(row) == HISTORY_FIELDS for row in history)
    assert all(row["learning_rate"] > 0 and row["seconds"] >= 0 for row in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert done["metrics"]["loss"] == history[-1]["loss"]

    assert done["model_id"]
    model = client.get(f"/v1/models/{done['model_id']}", headers=auth).get_json()
    assert model["job_id"] == job["id"] and model["dataset_id"] == ds["id"]
    assert (model["inputs"], model["outputs"], model["task"]) == (2, 1, "regression")
    assert model["spec"] == done["spec"]

    pred = client.post(f"/v1/models/{done['model_id']}/predict", headers=auth,
                       json={"inputs": [[0, 0], [1, 0]]})
    assert pred.status_code == 200, pred.get_json()
    outputs = pred.get_json()["outputs"]
    assert len(outputs) == 2 and all(len(row) == 1 for row in outputs)
    assert all(math.isfinite(v) for row in outputs for v in row)
    assert "labels" not in pred.get_json()


def test_xor_converges_and_predictions_match(app: Any, client: Any,
                                             auth: dict[str, str]) -> None:
    training = {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 400,
                "batch_size": "full", "seed": 3, "target_loss": 0.001}
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], [{"units": 6}, {"units": 1}], training)
    assert run(app, job["id"]) == "succeeded"
    done = get_job(client, auth, job["id"])
    pred = client.post(f"/v1/models/{done['model_id']}/predict", headers=auth,
                       json={"inputs": XOR["inputs"]}).get_json()
    assert np.allclose(pred["outputs"], XOR["targets"], atol=0.2), pred
    # target_loss stopped it early: the history ends where the run did, with no gaps.
    epochs = [row["epoch"] for row in walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)]
    assert epochs == list(range(1, len(epochs) + 1))
    assert done["progress"]["epoch"] == len(epochs)


def test_classification_with_validation(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, BLOBS)
    job = make_job(client, auth, ds["id"], [{"units": 5}, {"units": 3}],
                   {**QUICK, "validation_split": 0.34})
    assert run(app, job["id"]) == "succeeded"
    done = get_job(client, auth, job["id"])
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert isinstance(done["metrics"][key], float), (key, done["metrics"])
    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    assert all(row["val_loss"] is not None and 0 <= row["accuracy"] <= 1 for row in history)
    model = client.get(f"/v1/models/{done['model_id']}", headers=auth).get_json()
    assert model["classes"] == ["a", "b", "c"]
    assert model["feature_names"] == ["u", "v"]


def test_history_pagination(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 10})
    url = f"/v1/jobs/{job['id']}/history"
    assert client.get(url, headers=auth).get_json() == {"items": [], "next_cursor": None}
    assert run(app, job["id"]) == "succeeded"

    first = client.get(f"{url}?limit=4", headers=auth).get_json()
    assert [row["epoch"] for row in first["items"]] == [1, 2, 3, 4]
    assert first["next_cursor"] == "4"
    second = client.get(f"{url}?limit=4&cursor={first['next_cursor']}", headers=auth).get_json()
    assert [row["epoch"] for row in second["items"]] == [5, 6, 7, 8]
    for limit in (1, 3, 10, 100):
        epochs = [row["epoch"] for row in walk(client, auth, url, limit)]
        assert epochs == list(range(1, 11))
    err = problem(client.get(f"{url}?cursor=abc", headers=auth), 422)
    assert locs(err) == [["query", "cursor"]]


def test_divergence_fails_the_job_without_a_model(app: Any, client: Any,
                                                  auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training={
        "optimizer": {"name": "sgd", "learning_rate": 1e6}, "epochs": 30,
        "batch_size": "full", "seed": 1, "standardize": False})
    assert run(app, job["id"]) == "failed"
    done = get_job(client, auth, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["title"] == "Training diverged"
    assert "learning rate" in done["error"]["detail"].lower()
    assert "lower" in done["error"]["detail"].lower()
    assert done["model_id"] is None
    utc_time(done["finished_at"])
    assert walk(client, auth, "/v1/models", 100) == []
    # The epochs before the blow-up are kept, and hold no NaN or infinity.
    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert len(history) < 30
    assert all(math.isfinite(row["loss"]) for row in history)
    assert done["progress"]["epoch"] == len(history)


def test_job_cancelled_before_start_never_runs(app: Any, client: Any,
                                               auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training=QUICK)
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).status_code == 202
    assert run(app, job["id"]) is None
    done = get_job(client, auth, job["id"])
    assert done["status"] == "cancelled"
    assert done["started_at"] is None and done["model_id"] is None
    assert done["progress"]["epoch"] == 0
    assert walk(client, auth, f"/v1/jobs/{job['id']}/history", 100) == []


def test_run_job_twice_is_a_no_op(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 5})
    assert run(app, job["id"]) == "succeeded"
    before = get_job(client, auth, job["id"])
    assert run(app, job["id"]) is None
    after = get_job(client, auth, job["id"])
    assert after == before
    assert len(walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)) == 5
    assert len(walk(client, auth, "/v1/models", 100)) == 1


def test_unknown_job_id_is_dropped(app: Any) -> None:
    assert run(app, "job_does_not_exist") is None


def test_cancel_while_running_keeps_the_history_and_a_partial_model(app: Any, client: Any,
                                                    auth: dict[str, str]) -> None:
    app.config["SETTINGS"].flush_every_seconds = 0.02
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4))
    data = {"name": "long", "inputs": X.tolist(), "targets": (X @ [[1], [2], [-1], [0.5]])
            .tolist()}
    ds = make_dataset(client, auth, data)
    epochs = 100_000
    job = make_job(client, auth, ds["id"], [{"units": 16}, {"units": 1}],
                   {"epochs": epochs, "batch_size": "full", "seed": 1})

    result: list[Any] = []

    def work() -> None:
        try:
            result.append(run(app, job["id"]))
        except BaseException as exc:  # pragma: no cover - surfaced below
            result.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    running = get_job(client, auth, job["id"])
    while not (running["status"] == "running" and running["progress"]["epoch"] > 0):
        assert time.monotonic() < deadline, running
        assert thread.is_alive(), result
        time.sleep(0.01)
        running = get_job(client, auth, job["id"])
    assert 0 < running["progress"]["fraction"] < 1
    assert running["progress"]["eta_seconds"] is not None
    assert running["progress"]["eta_seconds"] >= 0
    utc_time(running["started_at"])
    assert running["finished_at"] is None
    problem(client.delete(f"/v1/datasets/{ds['id']}", headers=auth), 409)

    resp = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    assert resp.status_code == 202
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result == ["cancelled"]

    done = get_job(client, auth, job["id"])
    assert done["status"] == "cancelled" and done["error"] is None
    utc_time(done["finished_at"])
    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    assert len(history) == done["progress"]["epoch"]
    assert 0 < len(history) < epochs
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    # what it learnt is kept: a partial model of the last weights (no validation rows)
    model = client.get(f"/v1/models/{done['model_id']}", headers=auth).get_json()
    assert model["partial"] == {"reason": "cancelled", "epoch": len(history), "epochs": epochs}
    assert model["epochs_trained"] == len(history) == model["metrics"]["epoch"]
    assert model["continuable"] is True and model["metrics"]["stop_reason"] == "callback"
    assert done["metrics"]["loss"] == history[-1]["loss"]
    out = client.post(f"/v1/models/{model['id']}/predict", headers=auth,
                      json={"inputs": X[:3].tolist()})
    assert out.status_code == 200 and len(out.get_json()["outputs"]) == 3
    problem(client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth), 409)


def _as_if_a_worker_was_lost(job_id: str, attempts: int, recorded: int = 0) -> None:
    """Put the job where a worker that died mid-run (before any checkpoint) leaves it."""
    from sqlalchemy import update

    from service.db import session_scope
    from service.models import EpochRecord, Job, utcnow

    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            status="running", attempts=attempts, started_at=utcnow(), epoch=recorded))
        s.add_all([EpochRecord(job_id=job_id, epoch=e, loss=1.0, learning_rate=0.1, seconds=0.0)
                   for e in range(1, recorded + 1)])


def test_redelivered_job_reruns_without_duplicate_history(app: Any, client: Any,
                                                          auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 8})
    _as_if_a_worker_was_lost(job["id"], attempts=1, recorded=3)
    assert run(app, job["id"]) == "succeeded"
    done = get_job(client, auth, job["id"])
    assert done["attempts"] == 2
    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    assert [row["epoch"] for row in history] == list(range(1, 9))
    assert all(row["loss"] != 1.0 for row in history[:3])  # the lost attempt's rows were redone


def test_job_that_lost_too_many_workers_fails(app: Any, client: Any,
                                              auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training=QUICK)
    _as_if_a_worker_was_lost(job["id"], attempts=app.config["SETTINGS"].max_attempts)
    assert run(app, job["id"]) is None
    done = get_job(client, auth, job["id"])
    assert done["status"] == "failed"
    assert done["error"]["title"] == "Too many attempts"
    assert "will not be retried" in done["error"]["detail"]
    assert done["model_id"] is None


def test_resumed_job_finds_over_every_attempts_rows(app: Any, client: Any,
                                                    auth: dict[str, str]) -> None:
    """A resumed attempt's engine saw only its own epochs: the job's findings are drawn from
    every attempt's rows in the database (a first attempt's are the engine's own)."""
    import backprop
    from service import inspection, storage
    from service.db import session_scope
    from service.models import EpochRecord, Job

    ds = make_dataset(client, auth, XOR)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 30})
    saved: dict[int, bytes] = {}
    backprop.train(job["spec"], XOR["inputs"], XOR["targets"], task="regression",
                   callback=lambda p: saved.setdefault(p.epoch, p.checkpoint()) and False)
    _as_if_a_worker_was_lost(job["id"], attempts=1)
    with session_scope() as s:  # the lost attempt reached a (too good to be true) low loss
        blob = storage.put(s, saved[3])
        s.flush()
        s.query(Job).filter_by(id=job["id"]).update(
            {"checkpoint_blob_id": blob.id, "checkpoint_epoch": 3, "epoch": 3})
        s.add_all([EpochRecord(job_id=job["id"], epoch=e, loss=1e-4, learning_rate=0.05,
                               seconds=0.0) for e in (1, 2, 3)])
    assert run(app, job["id"]) == "succeeded"
    done = get_job(client, auth, job["id"])
    assert [w["name"] for w in done["warnings"]] == ["loss_not_decreasing"]
    with session_scope() as s:
        assert done["warnings"] == inspection.findings(s, job["id"])
    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    assert [row["epoch"] for row in history] == list(range(1, 31))
