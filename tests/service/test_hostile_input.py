"""Input a database cannot store or a parser cannot fit: 4xx problems naming the field, alike on
SQLite and PostgreSQL (``database_url`` is PostgreSQL when reachable; ``sqlite_app`` is SQLite)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from .helpers import XOR, locs, make_dataset, make_job, problem

NUL = "\x00"


@pytest.fixture(params=["default", "sqlite"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, dict[str, str]]:
    """A client and auth header on the session's database (PostgreSQL when reachable) and on
    SQLite: every check below must answer the same on both."""
    from service import auth, db
    from service.app import create_app

    url = request.getfixturevalue("database_url" if request.param == "default" else
                                  "sqlite_url")
    app = create_app({"data_dir": tmp_path, "database_url": url,
                      "broker_url": "filesystem://", "rate_limit": ""})
    app.config["TESTING"] = True
    with db.session_scope() as s:
        key = auth.create_key(s, f"hostile-{secrets.token_hex(4)}")
    return app.test_client(), {"Authorization": f"Bearer {key}"}


def _csv(client: Any, auth: dict[str, str], data: str, query: str) -> Any:
    return client.post(f"/v1/datasets?{query}", headers=auth, data=data.encode(),
                       content_type="text/csv")


JSON_BODIES = [
    ({**XOR, "name": f"x{NUL}y"}, ["name"]),
    ({**XOR, "feature_names": ["a", f"b{NUL}"]}, ["feature_names", 1]),
    ({"name": "l", "inputs": [[0], [1]], "labels": ["a", f"b{NUL}"]}, ["labels", 1]),
]


@pytest.mark.parametrize(("body", "loc"), JSON_BODIES)
def test_nul_in_json_dataset_is_422(any_db: Any, body: dict[str, Any], loc: list[Any]) -> None:
    client, auth = any_db
    err = problem(client.post("/v1/datasets", headers=auth, json=body), 422)
    assert loc in locs(err), err
    assert "NUL" in err["detail"]
    # inline in a job too, under "dataset"
    job = {"dataset": body, "network": {"layers": [{"units": 2}]}}
    err = problem(client.post("/v1/jobs", headers=auth, json=job), 422)
    assert ["dataset", *loc] in locs(err), err


@pytest.mark.parametrize(("data", "query", "loc"), [
    ("a,y\n1,2\n", f"name=n{NUL}&target=y", ["query", "name"]),
    ("a,y\n1,2\n", f"name=n&target=y{NUL}", ["query", "target"]),
    (f"a{NUL},y\n1,2\n3,4\n", "name=n&target=y", ["body", "header"]),
    (f"a,y\n1,x\n2,y{NUL}\n", "name=n&target=y", ["body", 3, "y"]),
    (f"a,y\n1{NUL},2\n", "name=n&target=y", ["body", 2, "a"]),
])
def test_nul_in_csv_is_422(any_db: Any, data: str, query: str, loc: list[Any]) -> None:
    client, auth = any_db
    err = problem(_csv(client, auth, data, query), 422)
    assert loc in locs(err), err


@pytest.mark.parametrize("path", ["/v1/datasets/ds{}x", "/v1/jobs/job{}x",
                                  "/v1/jobs/job{}x/history", "/v1/models/mdl{}x",
                                  "/v1/jobs/job{}x/diagnostics", "/v1/sweeps/sw{}x",
                                  "/v1/sweeps/sw{}x/trials"])
def test_nul_in_a_path_id_is_a_problem(any_db: Any, path: str) -> None:
    client, auth = any_db
    err = problem(client.get(path.format("%00"), headers=auth), 422)
    assert locs(err)[0][0] == "path"


@pytest.mark.parametrize("url", ["/v1/datasets?cursor=a%00b", "/v1/jobs?cursor=%00",
                                 "/v1/models?cursor=x%00", "/v1/sweeps?cursor=%00"])
def test_nul_in_a_query_is_422(any_db: Any, url: str) -> None:
    client, auth = any_db
    err = problem(client.get(url, headers=auth), 422)
    assert ["query", "cursor"] in locs(err)


def test_nul_in_dataset_id_and_idempotency_key(any_db: Any) -> None:
    client, auth = any_db
    body = {"dataset_id": f"ds{NUL}", "network": {"layers": [{"units": 1}]}}
    err = problem(client.post("/v1/jobs", headers=auth, json=body), 422)
    assert ["dataset_id"] in locs(err)
    ds = make_dataset(client, auth)
    body = {"dataset_id": ds["id"], "network": {"layers": [{"units": 1}]}}
    err = problem(client.post("/v1/jobs", headers={**auth, "Idempotency-Key": f"k{NUL}"},
                              json=body), 422)
    assert ["header", "Idempotency-Key"] in locs(err), err


@pytest.mark.parametrize("query", [
    "name=" + "n" * 201 + "&target=y",
    "name=n&target=" + "y" * 2001,
])
def test_csv_query_lengths_are_422_like_json(any_db: Any, query: str) -> None:
    client, auth = any_db
    err = problem(_csv(client, auth, "a,y\n1,2\n", query), 422)
    assert locs(err)[0][:1] == ["query"], err


def test_csv_names_and_labels_obey_the_json_length_bounds(any_db: Any) -> None:
    client, auth = any_db
    long = "c" * 201
    err = problem(_csv(client, auth, f"{long},y\n1,2\n", "name=n&target=y"), 422)
    assert ["body", "header"] in locs(err) and "201 characters" in err["detail"]
    err = problem(_csv(client, auth, f"a,y\n1,x\n2,{long}\n", "name=n&target=y"), 422)
    assert ["body", 3, "y"] in locs(err) and "201 characters" in err["detail"]
    # the JSON upload refuses the same
    body = {"name": "n", "inputs": [[1], [2]], "labels": ["x", long]}
    problem(client.post("/v1/datasets", headers=auth, json=body), 422)


@pytest.mark.parametrize("cursor", ["١٢", "²", "1" * 40, "99999999999999999999", "-1", "+1",
                                    " 1", "1.5", "0x10"])
def test_history_cursors_that_are_not_plain_epochs_are_422(any_db: Any, cursor: str) -> None:
    client, auth = any_db
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"])
    from urllib.parse import quote

    err = problem(client.get(f"/v1/jobs/{job['id']}/history?cursor={quote(cursor)}",
                             headers=auth), 422)
    assert ["query", "cursor"] in locs(err)


@pytest.mark.parametrize("query", ["limit=١٢", "limit=99999999999999999999999", "limit=-1",
                                   "limit=1e3", "limit=%00"])
def test_limits_that_are_not_plain_numbers_are_422(any_db: Any, query: str) -> None:
    client, auth = any_db
    for url in ("/v1/datasets", "/v1/jobs", "/v1/models"):
        err = problem(client.get(f"{url}?{query}", headers=auth), 422)
        assert ["query", "limit"] in locs(err)


def test_a_value_the_database_refuses_is_422_not_500(database_url: str, tmp_path: Path) -> None:
    """The net under the schemas: an entry point that forgot to check still answers 4xx."""
    from sqlalchemy import text

    from service import db
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://", "rate_limit": ""})

    def unchecked(value: str) -> Any:
        return {"n": db.request_session().execute(text("SELECT CAST(:v AS VARCHAR(3))"),
                                                  {"v": value}).scalar()}

    app.add_url_rule("/unchecked/<value>", view_func=unchecked)

    client = app.test_client()
    if database_url.startswith("postgresql"):
        problem(client.get("/unchecked/a%00b"), 422)
    assert client.get("/unchecked/ok").status_code == 200


def test_nul_in_the_inspection_and_sweep_bodies(any_db: Any) -> None:
    client, auth = any_db
    err = problem(client.post("/v1/models/mdl_x/evaluate", headers=auth,
                              json={"dataset_id": f"ds{NUL}"}), 422)
    assert ["dataset_id"] in locs(err)
    err = problem(client.post("/v1/models/mdl_x/evaluate", headers=auth,
                              json={"inputs": [[1.0]], "labels": [f"a{NUL}"]}), 422)
    assert ["labels", 0] in locs(err)
    base = {"dataset_id": "ds_x", "network": {"layers": [{"units": 1}]}}
    err = problem(client.post("/v1/sweeps", headers=auth, json={
        "base": base, "space": {f"training.epochs{NUL}": {"choice": [1, 2]}}}), 422)
    assert locs(err)[0][0] == "space", err


@pytest.mark.parametrize("cursor", ["١٢", "²", "9" * 30, "-1"])
def test_diagnostics_cursors_that_are_not_plain_epochs_are_422(any_db: Any, cursor: str) -> None:
    client, auth = any_db
    from urllib.parse import quote

    err = problem(client.get(f"/v1/jobs/job_x/diagnostics?cursor={quote(cursor)}",
                             headers=auth), 422)
    assert ["query", "cursor"] in locs(err)
