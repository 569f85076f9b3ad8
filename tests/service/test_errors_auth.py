"""Every error is a problem document with a status a client can act on; every ``/v1`` call needs a
valid API key; another tenant's resources are invisible."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import QUICK, XOR, later, locs, make_dataset, make_job, problem, train, walk

PREDICT = "/v1/models/{model}/predict"
JOB = {"network": {"layers": [{"units": 3}, {"units": 1}]}}


@pytest.fixture()
def model(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    """A finished job (with its model) of the ``auth`` tenant."""
    return train(app, client, auth, XOR, [{"units": 3}, {"units": 1}], {**QUICK, "epochs": 3})


def url_for(template: str, model: dict[str, Any]) -> str:
    return template.format(model=model["model_id"], job=model["id"],
                           dataset=model["dataset_id"])


# -- bad bodies --------------------------------------------------------------------------------

BAD_JSON = [
    pytest.param(b'{"name": "x",', "Malformed JSON", id="truncated"),
    pytest.param(b"{'name': 'x'}", "Malformed JSON", id="single-quotes"),
    pytest.param(b'{"inputs": [[1, 2,]]}', "Malformed JSON", id="trailing-comma"),
    pytest.param(b'{"inputs": [[NaN]]}', "Malformed JSON", id="nan"),
    pytest.param(b'{"inputs": [[Infinity]]}', "Malformed JSON", id="infinity"),
    pytest.param(b'{"inputs": [[-Infinity]]}', "Malformed JSON", id="minus-infinity"),
    pytest.param(b'{"inputs": [[1e400]]}', "Malformed JSON", id="1e400"),
    pytest.param(b'{"inputs": [[-1e400]]}', "Malformed JSON", id="minus-1e400"),
    pytest.param(b'{"name": "\xff\xfe"}', "Malformed JSON", id="not-utf8"),
    pytest.param(b"[" * 5000 + b"]" * 5000, "Malformed JSON", id="too-deep"),
]


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/jobs", PREDICT])
@pytest.mark.parametrize(("data", "title"), BAD_JSON)
def test_malformed_json_is_400(client: Any, auth: dict[str, str], model: dict[str, Any],
                               path: str, data: bytes, title: str) -> None:
    resp = client.post(url_for(path, model), headers=auth, data=data,
                       content_type="application/json")
    err = problem(resp, 400)
    assert err["title"] == title
    assert "JSON" in err["detail"]


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/jobs", PREDICT])
@pytest.mark.parametrize("data", [b"[1, 2]", b"null", b'"text"', b"42"])
def test_json_that_is_not_an_object_is_422(client: Any, auth: dict[str, str],
                                           model: dict[str, Any], path: str,
                                           data: bytes) -> None:
    resp = client.post(url_for(path, model), headers=auth, data=data,
                       content_type="application/json")
    err = problem(resp, 422)
    assert locs(err) == [[]]  # the body as a whole is wrong


@pytest.mark.parametrize("path", ["/v1/datasets", "/v1/jobs", PREDICT])
def test_empty_json_body(client: Any, auth: dict[str, str], model: dict[str, Any],
                         path: str) -> None:
    resp = client.post(url_for(path, model), headers=auth, data=b"",
                       content_type="application/json")
    assert resp.status_code in (400, 422)
    problem(resp, resp.status_code)


@pytest.mark.parametrize(("path", "content_type", "allowed"), [
    ("/v1/datasets", "text/plain", "application/json or text/csv"),
    ("/v1/datasets", "application/x-www-form-urlencoded", "application/json or text/csv"),
    ("/v1/jobs", "text/csv", "application/json"),
    ("/v1/jobs", "application/xml", "application/json"),
    ("/v1/jobs", "", "application/json"),
    (PREDICT, "multipart/form-data; boundary=x", "application/json"),
])
def test_wrong_content_type_is_415(client: Any, auth: dict[str, str], model: dict[str, Any],
                                   path: str, content_type: str, allowed: str) -> None:
    headers = dict(auth)
    if content_type:
        headers["Content-Type"] = content_type
    resp = client.post(url_for(path, model), headers=headers, data=b'{"inputs": [[0, 0]]}')
    err = problem(resp, 415)
    assert allowed in err["detail"]
    assert (content_type.split(";")[0] or "no Content-Type") in err["detail"]


@pytest.mark.parametrize(("path", "body", "loc"), [
    ("/v1/datasets", {**XOR, "inputs": [[0, 0], [0, 1, 5], [1, 0], [1, 1]]}, ["inputs", 1]),
    ("/v1/datasets", {**XOR, "targets": [[0], [1], [1], [0, 1]]}, ["targets", 3]),
    ("/v1/jobs", {**JOB, "dataset": {**XOR, "inputs": [[0, 0], [0, 1], [1, 0], [1]]}},
     ["dataset", "inputs", 3]),
    (PREDICT, {"inputs": [[0, 0], [0]]}, ["inputs", 1]),
])
def test_ragged_rows_are_422_naming_the_row(client: Any, auth: dict[str, str],
                                            model: dict[str, Any], path: str,
                                            body: dict[str, Any], loc: list[str | int]) -> None:
    err = problem(client.post(url_for(path, model), headers=auth, json=body), 422)
    assert locs(err) == [loc]
    assert f"row {loc[-1]}" in err["detail"]


@pytest.mark.parametrize(("path", "body", "loc"), [
    ("/v1/datasets", {**XOR, "lables": ["a"]}, ["lables"]),
    ("/v1/jobs", {**JOB, "dataset": XOR, "priority": 1}, ["priority"]),
    ("/v1/jobs", {"dataset": XOR, "network": {"layers": [{"units": 3, "dropout": 0.1},
                                                         {"units": 1}]}},
     ["network", "layers", 0, "dropout"]),
    ("/v1/jobs", {**JOB, "dataset": XOR, "training": {"optimizer": {"name": "sgd",
                                                                    "learning_rat": 0.1}}},
     ["training", "optimizer", "learning_rat"]),
    ("/v1/jobs", {**JOB, "dataset": XOR, "training": {"early_stopping": {"patiense": 3}}},
     ["training", "early_stopping", "patiense"]),
    ("/v1/jobs", {**JOB, "dataset": {**XOR, "colour": "red"}}, ["dataset", "colour"]),
    (PREDICT, {"inputs": [[0, 0]], "batch": 1}, ["batch"]),
])
def test_unknown_fields_are_422(client: Any, auth: dict[str, str], model: dict[str, Any],
                                path: str, body: dict[str, Any], loc: list[str | int]) -> None:
    err = problem(client.post(url_for(path, model), headers=auth, json=body), 422)
    assert loc in locs(err), err
    assert any(e["loc"] == loc and "Extra inputs" in e["msg"] for e in err["errors"])


@pytest.mark.parametrize(("path", "loc"), [
    ("/v1/datasets?limit=-1", ["query", "limit"]),
    ("/v1/jobs?status=finished", ["query", "status"]),
    ("/v1/models?limit=1000", ["query", "limit"]),
    ("/v1/models?sort=name", ["query", "sort"]),
    ("/v1/datasets/" + "x" * 65, ["path", "dataset_id"]),
])
def test_bad_query_and_path_parameters_are_422(client: Any, auth: dict[str, str], path: str,
                                               loc: list[str | int]) -> None:
    err = problem(client.get(path, headers=auth), 422)
    assert locs(err) == [loc]


def test_idempotency_key_too_long(client: Any, auth: dict[str, str]) -> None:
    err = problem(client.post("/v1/jobs", headers={**auth, "Idempotency-Key": "k" * 201},
                              json={**JOB, "dataset": XOR}), 422)
    assert locs(err) == [["header", "Idempotency-Key"]]


# -- 404, 405, 413 -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/datasets/ds_missing"),
    ("DELETE", "/v1/datasets/ds_missing"),
    ("GET", "/v1/jobs/job_missing"),
    ("GET", "/v1/jobs/job_missing/history"),
    ("POST", "/v1/jobs/job_missing/cancel"),
    ("GET", "/v1/models/mdl_missing"),
    ("GET", "/v1/models/mdl_missing/weights"),
    ("DELETE", "/v1/models/mdl_missing"),
])
def test_unknown_ids_are_404(client: Any, auth: dict[str, str], method: str, path: str) -> None:
    err = problem(client.open(path, method=method, headers=auth), 404)
    assert path.split("/")[3] in err["detail"]


@pytest.mark.parametrize("path", ["/v1/nothing", "/v2/datasets", "/nothing", "/v1/jobs/x/y/z"])
def test_unknown_paths_are_404(client: Any, auth: dict[str, str], path: str) -> None:
    problem(client.get(path, headers=auth), 404)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/v1/datasets", {"GET", "POST"}),
    ("PATCH", "/v1/datasets/ds_x", {"GET", "DELETE"}),
    ("DELETE", "/v1/jobs", {"GET", "POST"}),
    ("GET", "/v1/jobs/job_x/cancel", {"POST"}),
    ("PUT", "/v1/models/mdl_x", {"GET", "DELETE"}),
    ("GET", "/v1/models/mdl_x/predict", {"POST"}),
    ("POST", "/healthz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(client: Any, auth: dict[str, str], method: str,
                                        path: str, allowed: set[str]) -> None:
    resp = client.open(path, method=method, headers=auth)
    err = problem(resp, 405)
    assert err["title"] == "Method Not Allowed"
    allow = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method not in allow


@pytest.fixture()
def tiny(database_url: str, tmp_path: Path) -> Any:
    """An app whose requests may be at most 1000 bytes."""
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://", "max_request_bytes": 1000})
    app.config["TESTING"] = True
    return app.test_client()


@pytest.mark.parametrize(("path", "content_type"), [
    ("/v1/datasets", "application/json"),
    ("/v1/datasets?name=big&target=y", "text/csv"),
    ("/v1/jobs", "application/json"),
])
def test_body_over_max_request_bytes_is_413(tiny: Any, auth: dict[str, str], path: str,
                                            content_type: str) -> None:
    data = b'{"name": "' + b"x" * 2000 + b'"}'
    err = problem(tiny.post(path, headers=auth, data=data, content_type=content_type), 413)
    assert "MAX_REQUEST_BYTES" in err["detail"]
    assert "1000" in err["detail"]


def test_body_under_max_request_bytes_is_fine(tiny: Any, auth: dict[str, str]) -> None:
    assert tiny.post("/v1/datasets", headers=auth, json=XOR).status_code == 201


# -- authentication ----------------------------------------------------------------------------


def v1_operations(app: Any) -> list[tuple[str, str]]:
    doc = app.test_client().get("/openapi.json").get_json()
    ops = [(method.upper(), path.replace("{", "").replace("}", ""))
           for path, item in doc["paths"].items() if path.startswith("/v1")
           for method in item if method in ("get", "post", "delete", "put", "patch")]
    assert len(ops) >= 14
    return ops


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bp_valid_looking_but_no_scheme",
    "Bearer bp_not_a_real_key", "Bearer " + "x" * 5000,
])
def test_bad_credentials_are_401_on_every_operation(app: Any, client: Any,
                                                    header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in v1_operations(app):
        resp = client.open(path, method=method, headers=headers, json={})
        err = problem(resp, 401)
        assert err["title"] == "Unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Bearer" in err["detail"] or "API key" in err["detail"]


def test_auth_is_checked_before_the_body(client: Any) -> None:
    problem(client.post("/v1/jobs", data=b"{not json", content_type="application/json"), 401)
    problem(client.post("/v1/datasets", data=b"x", content_type="text/plain"), 401)


def test_lowercase_scheme_is_accepted(client: Any, key: str) -> None:
    assert client.get("/v1/datasets", headers={"Authorization": f"bearer {key}"}
                      ).status_code == 200


def test_revoked_key_is_401(app: Any, client: Any, key: str, auth: dict[str, str]) -> None:
    from service import auth as service_auth
    from service import db

    assert client.get("/v1/datasets", headers=auth).status_code == 200  # now cached
    with db.session_scope() as s:
        assert service_auth.revoke_key(s, key) == 1
    later(app, app.config["SETTINGS"].cache_ttl_seconds)  # the documented bound
    err = problem(client.get("/v1/datasets", headers=auth), 401)
    assert "revoked" in err["detail"]
    problem(client.post("/v1/datasets", headers=auth, json=XOR), 401)


def test_revoke_by_prefix(client: Any, key: str, auth: dict[str, str]) -> None:
    from service import auth as service_auth
    from service import db

    with db.session_scope() as s:
        assert service_auth.revoke_key(s, key[:10]) == 1
    problem(client.get("/v1/datasets", headers=auth), 401)


# -- tenants -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "template", "body"), [
    ("GET", "/v1/datasets/{dataset}", None),
    ("DELETE", "/v1/datasets/{dataset}", None),
    ("GET", "/v1/jobs/{job}", None),
    ("GET", "/v1/jobs/{job}/history", None),
    ("POST", "/v1/jobs/{job}/cancel", None),
    ("GET", "/v1/models/{model}", None),
    ("POST", "/v1/models/{model}/predict", {"inputs": [[0, 1]]}),
    ("GET", "/v1/models/{model}/weights", None),
    ("DELETE", "/v1/models/{model}", None),
])
def test_other_tenant_gets_404(client: Any, auth: dict[str, str], other_key: str,
                               model: dict[str, Any], method: str, template: str,
                               body: dict[str, Any] | None) -> None:
    other = {"Authorization": f"Bearer {other_key}"}
    path = url_for(template, model)
    err = problem(client.open(path, method=method, headers=other, json=body), 404)
    assert "Not Found" in err["title"]
    # ... and nothing changed for the owner; the answer is the same as for an unknown id.
    assert client.get(url_for("/v1/datasets/{dataset}", model), headers=auth).status_code == 200
    assert client.get(url_for("/v1/models/{model}", model), headers=auth).status_code == 200
    owner = client.open(path, method=method, headers=auth, json=body)
    assert owner.status_code in (200, 204, 409), owner.get_json()


def test_cancel_of_another_tenants_queued_job(client: Any, auth: dict[str, str],
                                              other_key: str) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"])
    other = {"Authorization": f"Bearer {other_key}"}
    problem(client.post(f"/v1/jobs/{job['id']}/cancel", headers=other), 404)
    assert client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()["status"] == "queued"


def test_lists_show_only_the_own_tenants_items(client: Any, auth: dict[str, str],
                                               other_key: str, model: dict[str, Any]) -> None:
    other = {"Authorization": f"Bearer {other_key}"}
    make_job(client, auth, model["dataset_id"])  # a queued one too
    for path in ("/v1/datasets", "/v1/jobs", "/v1/jobs?status=queued",
                 "/v1/jobs?status=succeeded", "/v1/models"):
        assert walk(client, auth, path, 100), path
        assert walk(client, other, path, 100) == [], path
    theirs = make_dataset(client, other)
    assert [d["id"] for d in walk(client, other, "/v1/datasets", 100)] == [theirs["id"]]
    assert theirs["id"] not in [d["id"] for d in walk(client, auth, "/v1/datasets", 100)]


def test_cancel_takes_no_body(client: Any, auth: dict[str, str]) -> None:
    from .helpers import make_dataset, make_job

    job = make_job(client, auth, make_dataset(client, auth)["id"])
    resp = client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth, json={"force": True})
    assert problem(resp, 422)["errors"][0]["msg"] == "must be empty"
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth, json={}).status_code == 202


def test_a_body_is_required(client: Any, auth: dict[str, str]) -> None:
    resp = client.post("/v1/jobs", headers=auth)
    assert "request body" in problem(resp, 400)["detail"]
