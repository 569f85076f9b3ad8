"""``/v1/sweeps``: validation of the space, trials as jobs, the leaderboard, cancel, failures,
determinism, tenancy; the pruners on known curves."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service import db, sweep_pruning, sweeps
from service.models import Job

from .helpers import BLOBS, XOR, locs, make_dataset, problem, run

BASE: dict[str, Any] = {
    "network": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 1}]},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 20,
                 "batch_size": "full", "seed": 1},
}


def sweep_body(dataset_id: str, **extra: Any) -> dict[str, Any]:
    body = {"base": {"dataset_id": dataset_id, **BASE},
            "space": {"training.optimizer.learning_rate": {"log_uniform": [1e-3, 1e-1],
                                                           "points": 3}},
            "strategy": "grid", "metric": "loss"}
    body.update(extra)
    return body


def drain(app: Any, client: Any, auth: dict[str, str], sweep_id: str) -> dict[str, Any]:
    """Run every queued trial in process and advance the sweep, until it ends."""
    for _ in range(100):
        sweep = client.get(f"/v1/sweeps/{sweep_id}", headers=auth).get_json()
        if sweep["status"] != "running":
            return sweep
        with db.session_scope() as s:
            queued = s.scalars(Job.__table__.select().where(
                Job.sweep_id == sweep_id, Job.status == "queued").with_only_columns(
                Job.id)).all()
        for job_id in queued:
            run(app, job_id)
        with db.session_scope() as s:
            sweeps.advance(s, sweep_id, app.config["SETTINGS"].limits)
    raise AssertionError("the sweep did not end")


@pytest.fixture()
def xor_id(client: Any, auth: dict[str, str]) -> str:
    return make_dataset(client, auth, XOR)["id"]


BAD_SPACES = [
    ({"training.optimizer.learnin_rate": {"choice": [0.1]}},
     ["space", "training.optimizer.learnin_rate", "training", "optimizer"]),
    ({"network.layers.5.units": {"int": [2, 4]}}, ["space", "network.layers.5.units"]),
    ({"training.epochs": {"choice": []}}, ["space", "training.epochs", "choice"]),
    ({"training.l2": {"log_uniform": [0, 0.1]}}, ["space", "training.l2"]),
    ({"training.l2": {"uniform": [0.1, 0.01]}}, ["space", "training.l2"]),
    ({"training.l2": {"uniform": [0.0, 0.1], "choice": [1]}}, ["space", "training.l2"]),
    ({"network.layers.0.units": {"int": [0, 4]}}, ["space", "network.layers.0.units"]),
    ({"network.layers.0.activation": {"choice": ["tanh", "swish"]}},
     ["space", "network.layers.0.activation"]),
    ({"training.epochs": {"int": [1, 10**9]}}, ["space", "training.epochs"]),
]


@pytest.mark.parametrize(("space", "loc"), BAD_SPACES)
def test_bad_spaces_are_422_naming_the_field(client: Any, auth: dict[str, str], xor_id: str,
                                            space: dict[str, Any], loc: list[Any]) -> None:
    body = problem(client.post("/v1/sweeps", headers=auth,
                               json=sweep_body(xor_id, space=space, strategy="random")), 422)
    assert any(found[:len(loc)] == loc for found in locs(body)), (locs(body), body["detail"])


def test_other_bad_sweeps(client: Any, auth: dict[str, str], xor_id: str) -> None:
    too_many = sweep_body(xor_id, max_trials=2)
    assert locs(problem(client.post("/v1/sweeps", headers=auth, json=too_many), 422)) == \
        [["max_trials"]]
    no_points = sweep_body(xor_id, space={"training.l2": {"uniform": [0, 1]}})
    assert locs(problem(client.post("/v1/sweeps", headers=auth, json=no_points), 422)) == \
        [["space", "training.l2", "points"]]
    val = sweep_body(xor_id, metric="val_loss")
    assert locs(problem(client.post("/v1/sweeps", headers=auth, json=val), 422)) == [["metric"]]
    acc = sweep_body(xor_id, metric="accuracy")
    assert locs(problem(client.post("/v1/sweeps", headers=auth, json=acc), 422)) == [["metric"]]
    typo = {**sweep_body(xor_id), "stratgy": "grid"}
    assert ["stratgy"] in locs(problem(client.post("/v1/sweeps", headers=auth, json=typo), 422))
    missing = sweep_body("ds_nope")
    assert locs(problem(client.post("/v1/sweeps", headers=auth, json=missing), 422)) == \
        [["base", "dataset_id"]]


def test_grid_sweep_runs_its_trials_and_ranks_them(app: Any, client: Any, auth: dict[str, str],
                                                   xor_id: str, other_key: str) -> None:
    resp = client.post("/v1/sweeps", headers=auth, json=sweep_body(xor_id, max_concurrent=2))
    assert resp.status_code == 202, resp.get_json()
    sweep = resp.get_json()
    assert resp.headers["Location"].endswith(f"/v1/sweeps/{sweep['id']}")
    assert sweep["status"] == "running" and sweep["trials"]["queued"] == 2
    assert sweep["spec"]["max_trials"] == 3 and sweep["spec"]["direction"] == "minimize"
    done = drain(app, client, auth, sweep["id"])
    assert done["status"] == "succeeded" and done["trials"]["succeeded"] == 3
    trials = client.get(f"/v1/sweeps/{sweep['id']}/trials", headers=auth).get_json()["items"]
    rates = sorted(t["params"]["training.optimizer.learning_rate"] for t in trials)
    np.testing.assert_allclose(rates, [1e-3, 1e-2, 1e-1])
    values = [t["value"] for t in trials]
    assert values == sorted(values)
    for t in trials:  # each trial is an ordinary job of the same tenant
        job = client.get(f"/v1/jobs/{t['job_id']}", headers=auth).get_json()
        assert job["metrics"]["loss"] == t["value"]
        assert job["spec"]["training"]["optimizer"]["learning_rate"] == \
            t["params"]["training.optimizer.learning_rate"]
    assert done["best"]["job_id"] == trials[0]["job_id"]
    assert done["best"]["value"] == min(values)
    # pages of the leaderboard
    first = client.get(f"/v1/sweeps/{sweep['id']}/trials?limit=2", headers=auth).get_json()
    rest = client.get(f"/v1/sweeps/{sweep['id']}/trials?limit=2&cursor={first['next_cursor']}",
                      headers=auth).get_json()
    assert [t["job_id"] for t in first["items"] + rest["items"]] == [t["job_id"] for t in trials]
    assert rest["next_cursor"] is None
    problem(client.get(f"/v1/sweeps/{sweep['id']}/trials?cursor=%D9%A1", headers=auth), 422)
    # tenancy
    other = {"Authorization": f"Bearer {other_key}"}
    problem(client.get(f"/v1/sweeps/{sweep['id']}", headers=other), 404)
    problem(client.get(f"/v1/sweeps/{sweep['id']}/trials", headers=other), 404)
    problem(client.post(f"/v1/sweeps/{sweep['id']}/cancel", headers=other), 404)
    assert client.get("/v1/sweeps", headers=other).get_json()["items"] == []
    listed = client.get("/v1/sweeps?status=succeeded", headers=auth).get_json()["items"]
    assert [s["id"] for s in listed] == [sweep["id"]]


def test_random_sweeps_with_one_seed_propose_the_same_trials(client: Any, auth: dict[str, str],
                                                            xor_id: str) -> None:
    space = {"training.optimizer.learning_rate": {"log_uniform": [1e-4, 1e-1]},
             "network.layers.0.units": {"int": [2, 9]},
             "training.batch_size": {"choice": [1, 2, "full"]}}
    params = []
    for _ in range(2):
        body = sweep_body(xor_id, space=space, strategy="random", max_trials=6,
                          max_concurrent=6, seed=11)
        sid = client.post("/v1/sweeps", headers=auth, json=body).get_json()["id"]
        items = client.get(f"/v1/sweeps/{sid}/trials", headers=auth).get_json()["items"]
        params.append(sorted((t["number"], t["params"]) for t in items))
    assert params[0] == params[1] and len(params[0]) == 6
    for _, p in params[0]:
        assert 1e-4 <= p["training.optimizer.learning_rate"] <= 1e-1
        assert 2 <= p["network.layers.0.units"] <= 9
        assert p["training.batch_size"] in (1, 2, "full")
    assert len({p["training.optimizer.learning_rate"] for _, p in params[0]}) == 6


def test_tpe_sweep_finishes_within_its_space(app: Any, client: Any, auth: dict[str, str],
                                             xor_id: str) -> None:
    body = sweep_body(xor_id, strategy="tpe", max_trials=7, max_concurrent=1, seed=5,
                      space={"training.optimizer.learning_rate": {"log_uniform": [1e-3, 0.3]},
                             "training.optimizer.name": {"choice": ["adam", "rmsprop"]}})
    sid = client.post("/v1/sweeps", headers=auth, json=body).get_json()["id"]
    done = drain(app, client, auth, sid)
    assert done["status"] == "succeeded" and done["trials"]["succeeded"] == 7
    for t in client.get(f"/v1/sweeps/{sid}/trials", headers=auth).get_json()["items"]:
        assert 1e-3 <= t["params"]["training.optimizer.learning_rate"] <= 0.3
        assert t["params"]["training.optimizer.name"] in ("adam", "rmsprop")


def test_cancel_stops_the_sweep_and_its_trials(client: Any, auth: dict[str, str],
                                               xor_id: str) -> None:
    sid = client.post("/v1/sweeps", headers=auth, json=sweep_body(xor_id)).get_json()["id"]
    resp = client.post(f"/v1/sweeps/{sid}/cancel", headers=auth)
    assert resp.status_code == 202 and resp.get_json()["status"] == "cancelled"
    assert resp.get_json()["trials"]["cancelled"] == 2
    problem(client.post(f"/v1/sweeps/{sid}/cancel", headers=auth), 409)


def test_a_sweep_whose_trials_all_fail_says_why(app: Any, client: Any, auth: dict[str, str],
                                                xor_id: str) -> None:
    body = sweep_body(xor_id, space={"training.optimizer": {"choice": [
        {"name": "sgd", "learning_rate": 1e9}, {"name": "sgd", "learning_rate": 1e10}]}},
        metric="loss")
    body["base"]["training"]["epochs"] = 50
    sid = client.post("/v1/sweeps", headers=auth, json=body).get_json()["id"]
    done = drain(app, client, auth, sid)
    assert done["status"] == "failed" and done["trials"]["failed"] == 2
    assert done["error"]["title"] == "Every trial failed"
    assert "diverged" in done["error"]["detail"].lower()
    assert done["best"] is None


def test_accuracy_metric_is_maximised(app: Any, client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, BLOBS)["id"]
    body = {"base": {"dataset_id": ds, "network": {"layers": [{"units": 4}, {"units": 3}]},
                     "training": {"epochs": 15, "batch_size": "full", "validation_split": 0.34,
                                  "seed": 2}},
            "space": {"training.optimizer.learning_rate": {"choice": [1e-4, 0.05]}},
            "strategy": "grid", "metric": "val_accuracy"}
    resp = client.post("/v1/sweeps", headers=auth, json=body)
    assert resp.status_code == 202, resp.get_json()
    done = drain(app, client, auth, resp.get_json()["id"])
    assert done["spec"]["direction"] == "maximize"
    trials = client.get(f"/v1/sweeps/{done['id']}/trials", headers=auth).get_json()["items"]
    assert trials[0]["value"] >= trials[1]["value"] and done["best"]["value"] == trials[0]["value"]


# -- the pruners on known curves -------------------------------------------------------------


class T:
    def __init__(self, ident: str) -> None:
        self.id = ident


def test_median_pruner_stops_a_trial_worse_than_the_median() -> None:
    cfg = {"warmup_epochs": 2, "min_trials": 3}
    done = [T(f"d{i}") for i in range(3)]
    curves = {f"d{i}": np.linspace(1.0, 0.2 + 0.1 * i, 10) for i in range(3)}
    good, bad, young = T("good"), T("bad"), T("young")
    curves["good"] = np.linspace(1.0, 0.1, 6)
    curves["bad"] = np.full(6, 2.0)
    curves["young"] = np.full(2, 5.0)  # still in its warm-up
    pruned = sweep_pruning._median_prunes(curves, [good, bad, young], done, cfg)  # type: ignore
    assert [t.id for t in pruned] == ["bad"]
    assert sweep_pruning._median_prunes(curves, [bad], done[:2], cfg) == []  # type: ignore


def test_successive_halving_keeps_the_top_third_at_each_rung() -> None:
    cfg = {"reduction_factor": 3, "min_epochs": 2}
    trials = [T(f"t{i}") for i in range(6)]
    curves = {f"t{i}": np.full(4, float(i)) for i in range(6)}  # t0 best ... t5 worst
    pruned = sweep_pruning._halving_prunes(curves, trials, trials, cfg)  # type: ignore
    assert sorted(t.id for t in pruned) == ["t2", "t3", "t4", "t5"]
    few = {k: v for k, v in curves.items() if k in ("t4", "t5")}
    assert sweep_pruning._halving_prunes(few, trials[4:], trials[4:], cfg) == []  # type: ignore
