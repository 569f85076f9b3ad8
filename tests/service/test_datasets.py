"""``/v1/datasets``: JSON and CSV uploads, listing, getting, deleting."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .helpers import XOR, locs, make_dataset, make_job, problem, utc_time, walk

FIELDS = {"id", "name", "rows", "features", "outputs", "task", "classes", "feature_names",
          "sha256", "created_at"}


def post_csv(client: Any, auth: dict[str, str], data: str | bytes, **query: str) -> Any:
    body = data.encode() if isinstance(data, str) else data
    return client.post("/v1/datasets", headers=auth, data=body, content_type="text/csv",
                       query_string=query)


# -- JSON --------------------------------------------------------------------------------------


def test_json_regression_upload(client: Any, auth: dict[str, str]) -> None:
    resp = client.post("/v1/datasets", headers=auth, json={
        "name": "two-out", "inputs": [[0, 1, 2], [3, 4, 5]], "targets": [[1, 2], [3, 4.5]]})
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert set(ds) == FIELDS
    assert ds["name"] == "two-out"
    assert (ds["rows"], ds["features"], ds["outputs"]) == (2, 3, 2)
    assert ds["task"] == "regression"
    assert ds["classes"] is None
    assert ds["feature_names"] == ["x0", "x1", "x2"]
    assert re.fullmatch(r"[0-9a-f]{64}", ds["sha256"])
    utc_time(ds["created_at"])
    assert resp.headers["Location"] == f"/v1/datasets/{ds['id']}"
    again = client.get(resp.headers["Location"], headers=auth)
    assert again.status_code == 200
    assert again.get_json() == ds


def test_json_classification_with_string_labels(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, {"name": "pets", "inputs": [[1], [2], [3], [4]],
                                     "labels": ["dog", "cat", "dog", "bird"]})
    assert ds["task"] == "classification"
    assert ds["classes"] == ["bird", "cat", "dog"]
    assert ds["outputs"] == 3
    assert (ds["rows"], ds["features"]) == (4, 1)


def test_json_classification_with_int_labels(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, {"name": "digits", "inputs": [[1], [2], [3]],
                                     "labels": [7, 3, 7]})
    assert ds["task"] == "classification"
    assert ds["classes"] == [3, 7]  # kept as integers, not turned into strings
    assert ds["outputs"] == 2


def test_json_classification_with_mixed_labels(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, {"name": "mixed", "inputs": [[1], [2], [3], [4]],
                                     "labels": ["b", 2, "a", 1]})
    assert ds["classes"] == [1, 2, "a", "b"]


def test_json_feature_names_are_kept(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth, {**XOR, "feature_names": ["left", "right"]})
    assert ds["feature_names"] == ["left", "right"]
    assert client.get(f"/v1/datasets/{ds['id']}", headers=auth).get_json()["feature_names"] == \
        ["left", "right"]


def test_same_data_gives_same_sha256(client: Any, auth: dict[str, str]) -> None:
    a = make_dataset(client, auth, XOR)
    b = make_dataset(client, auth, XOR)
    c = make_dataset(client, auth, {**XOR, "targets": [[0], [1], [1], [1]]})
    assert a["id"] != b["id"]
    assert a["sha256"] == b["sha256"] != c["sha256"]


@pytest.mark.parametrize(("body", "loc", "needle"), [
    ({**XOR, "feature_names": ["a"]}, ["feature_names"], "1 names for 2"),
    ({**XOR, "feature_names": ["a", "a"]}, ["feature_names"], "distinct"),
    ({**XOR, "targets": [[0], [1], [1]]}, ["targets"], "3 target rows for 4"),
    ({**XOR, "targets": [[0], [1], [1, 2], [0]]}, ["targets", 2], "row 2"),
    ({**XOR, "inputs": [[0, 0], [0, 1], [1], [1, 1]]}, ["inputs", 2], "row 2"),
    ({"name": "x", "inputs": [[1], [2]], "labels": ["a"]}, ["labels"], "1 labels for 2"),
    ({"name": "x", "inputs": [[1], [2]], "labels": ["a", "a"]}, ["labels"], "2 distinct"),
    ({"name": "x", "inputs": [[1], [2]]}, [], "exactly one of 'targets'"),
    ({"name": "x", "inputs": [[1], [2]], "targets": [[1], [2]], "labels": ["a", "b"]}, [],
     "exactly one of 'targets'"),
    ({"name": "", "inputs": [[1]], "targets": [[1]]}, ["name"], "at least 1 character"),
    ({"name": "x", "inputs": [], "targets": [[1]]}, ["inputs"], "at least 1 item"),
    ({"name": "x", "inputs": [[]], "targets": [[1]]}, ["inputs", 0], "at least 1 item"),
    ({"name": "x", "inputs": [["1"]], "targets": [[1]]}, ["inputs", 0, 0], "number"),
    ({"name": "x", "inputs": [[True]], "targets": [[1]]}, ["inputs", 0, 0], "number"),
    ({"name": "x", "inputs": [[1], [2]], "labels": [1.5, 2]}, ["labels", 0], ""),
    ({**XOR, "target": [[0], [1], [1], [0]]}, ["target"], "Extra inputs"),
])
def test_json_upload_errors(client: Any, auth: dict[str, str], body: dict[str, Any],
                            loc: list[str | int], needle: str) -> None:
    err = problem(client.post("/v1/datasets", headers=auth, json=body), 422)
    assert loc in locs(err), err
    assert needle in err["detail"], err


def test_json_upload_with_query_string_is_rejected(client: Any, auth: dict[str, str]) -> None:
    err = problem(client.post("/v1/datasets?name=x", headers=auth, json=XOR), 422)
    assert locs(err) == [["query", "name"]]


def test_json_upload_limits(app: Any, client: Any, auth: dict[str, str]) -> None:
    app.config["SETTINGS"].limits.max_rows = 3
    err = problem(client.post("/v1/datasets", headers=auth, json=XOR), 413)
    assert "MAX_ROWS" in err["detail"]


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_numeric_target_is_regression(client: Any, auth: dict[str, str]) -> None:
    resp = post_csv(client, auth, "a,b,y\n1,2,3.5\n4,5,6\n7,8,-9e-1\n", name="num", target="y")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert set(ds) == FIELDS
    assert ds["name"] == "num"
    assert (ds["rows"], ds["features"], ds["outputs"]) == (3, 2, 1)
    assert ds["task"] == "regression"
    assert ds["classes"] is None
    assert ds["feature_names"] == ["a", "b"]
    assert resp.headers["Location"] == f"/v1/datasets/{ds['id']}"


def test_csv_text_target_is_classification(client: Any, auth: dict[str, str]) -> None:
    csv = ("sepal,species,petal\n"
           "5.1,setosa,1.4\n7.0,versicolor,4.7\n6.3,virginica,6.0\n4.9,setosa,1.5\n")
    resp = post_csv(client, auth, csv, name="iris", target="species")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert ds["task"] == "classification"
    assert ds["classes"] == ["setosa", "versicolor", "virginica"]
    assert ds["outputs"] == 3
    assert ds["feature_names"] == ["sepal", "petal"]  # the target column is taken out


def test_csv_several_target_columns(client: Any, auth: dict[str, str]) -> None:
    resp = post_csv(client, auth, "y1,x,y2\n1,2,3\n4,5,6\n", name="multi", target="y1, y2")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert (ds["features"], ds["outputs"], ds["task"]) == (1, 2, "regression")
    assert ds["feature_names"] == ["x"]


def test_csv_with_bom_crlf_and_blank_lines(client: Any, auth: dict[str, str]) -> None:
    data = "\ufeffx,y\r\n1,2\r\n\r\n3,4\r\n".encode()
    resp = post_csv(client, auth, data, name="bom", target="y")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert ds["feature_names"] == ["x"]  # no BOM glued to the first column's name
    assert ds["rows"] == 2


def test_csv_unicode_headers(client: Any, auth: dict[str, str]) -> None:
    resp = post_csv(client, auth, "température,日本,classe\n1,2,chat\n3,4,chien\n",
                    name="unicode", target="classe")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert ds["feature_names"] == ["température", "日本"]
    assert ds["classes"] == ["chat", "chien"]


def test_csv_quoted_fields(client: Any, auth: dict[str, str]) -> None:
    resp = post_csv(client, auth, '"x, first",y\n"1.5","a, b"\n2,c\n', name="q", target="y")
    assert resp.status_code == 201, resp.get_json()
    ds = resp.get_json()
    assert ds["feature_names"] == ["x, first"]
    assert ds["classes"] == ["a, b", "c"]


@pytest.mark.parametrize(("data", "query", "loc", "needles"), [
    ("a,a,y\n1,2,3\n", {"target": "y"}, ["body", "header"], ["'a'", "twice"]),
    ("a,b,y\n1,2,3\n4,oops,6\n", {"target": "y"}, ["body", 3, "b"], ["line 3", "'b'", "oops"]),
    ("a,b,y\n1,2,3\n4,nan,6\n", {"target": "y"}, ["body", 3, "b"], ["line 3", "finite"]),
    ("a,b,y\n1,2,3\n4,inf,6\n", {"target": "y"}, ["body", 3, "b"], ["line 3"]),
    ("", {"target": "y"}, ["body"], ["empty"]),
    ("a,b,y\n", {"target": "y"}, ["body"], ["no data rows"]),
    ("a,b,y\n1,2,3\n", {"target": "z"}, ["query", "target"], ["'z'"]),
    ("a,b,y\n1,2,3\n4,5\n", {"target": "y"}, ["body", 3], ["line 3", "2 fields", "3"]),
    ("a,b,y\n1,2,3\n4,5,6,7\n", {"target": "y"}, ["body", 3], ["line 3", "4 fields"]),
    ("a,,y\n1,2,3\n", {"target": "y"}, ["body", "header"], ["column 2"]),
    ("a,y\n1,x\n2,x\n", {"target": "y"}, ["body", "y"], ["2 distinct"]),
    ("a,y\n1,x\n2,\n", {"target": "y"}, ["body", 3, "y"], ["line 3", "empty"]),
    ("a,y,z\n1,x,q\n2,w,r\n", {"target": "y,z"}, ["query", "target"], ["exactly one"]),
    ("a,y\n1,2\n", {"target": "a,y"}, ["query", "target"], ["no input columns"]),
    ("a,y\n1,2\n", {"target": "y,y"}, ["query", "target"], ["twice"]),
    ("a,y\n1,2\n", {}, ["query", "target"], ["target"]),
    ("a,y\n1,2\n", {"target": "y", "nmae": "typo"}, ["query", "nmae"], ["nmae"]),
])
def test_csv_upload_errors(client: Any, auth: dict[str, str], data: str, query: dict[str, str],
                           loc: list[str | int], needles: list[str]) -> None:
    query = {"name": "bad", **query}
    err = problem(post_csv(client, auth, data, **query), 422)
    assert loc in locs(err), err
    for needle in needles:
        assert needle in err["detail"], err


def test_csv_without_name(client: Any, auth: dict[str, str]) -> None:
    err = problem(post_csv(client, auth, "a,y\n1,2\n", target="y"), 422)
    assert locs(err) == [["query", "name"]]


def test_csv_not_utf8(client: Any, auth: dict[str, str]) -> None:
    err = problem(post_csv(client, auth, "a,y\n1,\xe9\n".encode("latin-1"), name="l",
                           target="y"), 422)
    assert "UTF-8" in err["detail"]


def test_csv_row_limit(app: Any, client: Any, auth: dict[str, str]) -> None:
    app.config["SETTINGS"].limits.max_rows = 2
    err = problem(post_csv(client, auth, "a,y\n1,2\n3,4\n5,6\n", name="big", target="y"), 413)
    assert "MAX_ROWS" in err["detail"]


def test_csv_feature_limit(app: Any, client: Any, auth: dict[str, str]) -> None:
    app.config["SETTINGS"].limits.max_features = 1
    err = problem(post_csv(client, auth, "a,b,y\n1,2,3\n", name="wide", target="y"), 413)
    assert "MAX_FEATURES" in err["detail"]


# -- list, get, delete -------------------------------------------------------------------------


def test_list_pagination_walks_every_item_once(client: Any, auth: dict[str, str]) -> None:
    made = [make_dataset(client, auth, {**XOR, "name": f"d{i}"})["id"] for i in range(7)]
    for limit in (1, 3, 7, 100):
        items = walk(client, auth, "/v1/datasets", limit)
        ids = [item["id"] for item in items]
        assert len(ids) == len(set(ids)) == 7
        assert set(ids) == set(made)
        assert ids == sorted(ids, reverse=True)  # newest first, stable across pages
        assert all(set(item) == FIELDS for item in items)


def test_list_first_page(client: Any, auth: dict[str, str]) -> None:
    for i in range(3):
        make_dataset(client, auth, {**XOR, "name": f"d{i}"})
    page = client.get("/v1/datasets?limit=2", headers=auth).get_json()
    assert len(page["items"]) == 2
    assert isinstance(page["next_cursor"], str)
    empty = client.get("/v1/datasets", headers=auth).get_json()
    assert len(empty["items"]) == 3 and empty["next_cursor"] is None


@pytest.mark.parametrize(("query", "loc"), [
    ("limit=0", ["query", "limit"]),
    ("limit=101", ["query", "limit"]),
    ("limit=abc", ["query", "limit"]),
    ("page=2", ["query", "page"]),
])
def test_list_bad_query(client: Any, auth: dict[str, str], query: str,
                        loc: list[str | int]) -> None:
    err = problem(client.get(f"/v1/datasets?{query}", headers=auth), 422)
    assert loc in locs(err)


def test_get_unknown_dataset(client: Any, auth: dict[str, str]) -> None:
    err = problem(client.get("/v1/datasets/ds_nope", headers=auth), 404)
    assert "ds_nope" in err["detail"]


def test_delete_then_gone(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    resp = client.delete(f"/v1/datasets/{ds['id']}", headers=auth)
    assert resp.status_code == 204
    assert resp.get_data() == b""
    problem(client.get(f"/v1/datasets/{ds['id']}", headers=auth), 404)
    problem(client.delete(f"/v1/datasets/{ds['id']}", headers=auth), 404)
    assert ds["id"] not in [d["id"] for d in walk(client, auth, "/v1/datasets", 100)]


def test_delete_while_a_queued_job_uses_it(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"])
    err = problem(client.delete(f"/v1/datasets/{ds['id']}", headers=auth), 409)
    assert job["id"] in err["detail"]
    assert client.get(f"/v1/datasets/{ds['id']}", headers=auth).status_code == 200
    # Once the job is finished (here: cancelled), the dataset can go; the job keeps its id.
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).status_code == 202
    assert client.delete(f"/v1/datasets/{ds['id']}", headers=auth).status_code == 204
    kept = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert kept["dataset_id"] == ds["id"]
