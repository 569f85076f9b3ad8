"""Operational endpoints (no auth): health, readiness, metrics, the OpenAPI document, the docs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import make_dataset, make_job, problem

NOWHERE_DB = "postgresql+psycopg://postgres@127.0.0.1:1/nope"


def test_healthz(client: Any) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok"}


def test_readyz(client: Any) -> None:
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok",
                                                          "rate_limit_store": "ok"}}


@pytest.fixture()
def no_database(tmp_path: Path, database_url: str) -> Any:
    """An app whose database URL points nowhere (the next test's app points back)."""
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": NOWHERE_DB,
                      "broker_url": "filesystem://"})
    app.config["TESTING"] = True
    return app.test_client()


def test_readyz_without_database(no_database: Any) -> None:
    resp = no_database.get("/readyz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unreachable")
    assert body["checks"]["broker"] == "ok"
    assert no_database.get("/healthz").status_code == 200  # the process itself is fine


def test_api_without_database_is_503_not_500(no_database: Any) -> None:
    resp = no_database.get("/v1/datasets", headers={"Authorization": "Bearer bp_anything"})
    err = problem(resp, 503)
    assert "database" in err["detail"]
    assert resp.headers["Retry-After"].isdigit()


def test_readyz_without_broker(tmp_path: Path, database_url: str) -> None:
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "redis://127.0.0.1:1/0"})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    checks = resp.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"].startswith("unreachable")


def test_metrics(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    make_job(client, auth, ds["id"])
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    assert "version=0.0.4" in resp.headers["Content-Type"]
    families = {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    assert {"backprop_jobs", "backprop_datasets", "backprop_models"} <= set(families)
    queued = [s for s in families["backprop_jobs"].samples if s.labels == {"status": "queued"}]
    assert queued and queued[0].value >= 1
    assert families["backprop_datasets"].samples[0].value >= 1


# -- the OpenAPI document ----------------------------------------------------------------------


@pytest.fixture()
def doc(client: Any) -> dict[str, Any]:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    return resp.get_json()


def test_openapi_is_valid_3_1(doc: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    assert doc["openapi"].startswith("3.1")
    validator.validate(doc)


def test_openapi_documents_every_route(app: Any, doc: dict[str, Any]) -> None:
    documented = {(m.upper(), re.sub(r"\{(\w+)\}", r"<\1>", p))
                  for p, item in doc["paths"].items() for m in item
                  if m in ("get", "post", "put", "patch", "delete")}
    served = {(m, rule.rule) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/v1") or rule.rule in ("/healthz", "/readyz", "/metrics")
              for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served <= documented


def test_v1_operations_document_problems(doc: dict[str, Any]) -> None:
    problem_schema = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem_schema["properties"])
    count = 0
    for path, item in doc["paths"].items():
        if not path.startswith("/v1"):
            assert "security" not in next(iter(item.values())), path
            continue
        for method, op in item.items():
            count += 1
            assert op["security"] == [{"bearer": []}], (method, path)
            codes = ["401", "422"] + (["404"] if "{" in path else []) + \
                (["400", "413", "415"] if method == "post" else [])
            for code in codes:
                content = op["responses"][code]["content"]
                assert list(content) == ["application/problem+json"], (method, path, code)
                assert content["application/problem+json"]["schema"] == \
                    {"$ref": "#/components/schemas/Problem"}
    assert count >= 14
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_openapi_dataset_upload_takes_json_and_csv(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/datasets"]["post"]
    assert {"application/json", "text/csv"} <= set(op["requestBody"]["content"])
    assert {"name", "target"} <= {p["name"] for p in op["parameters"]}
    assert "201" in op["responses"]
    assert {"200", "202"} <= set(doc["paths"]["/v1/jobs"]["post"]["responses"])


def test_openapi_names_the_data_of_each_stream_event(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/v1/jobs/{job_id}/events"]["get"]
    events = op["responses"]["200"]["content"]["text/event-stream"]["x-events"]
    assert set(events) == {"epoch", "diagnostics", "status", "end"}
    refs = {name: e["allOf"][0]["$ref"].rsplit("/", 1)[-1] for name, e in events.items()}
    assert refs["diagnostics"] == "DiagnosticsEpoch" and refs["end"] == "JobOut"
    assert set(refs.values()) <= set(doc["components"]["schemas"])
    assert "N.d" in op["responses"]["200"]["description"]


# -- interactive docs --------------------------------------------------------------------------


def test_docs_are_served_offline(client: Any, doc: dict[str, Any]) -> None:
    resp = client.get("/docs")
    assert resp.status_code in (301, 302, 307, 308)
    page_url = urljoin("http://localhost/docs", resp.headers["Location"])
    page = client.get(urlsplit(page_url).path)
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "swagger" in html.lower()
    assert not re.search(r"https?://", html), "the docs page must not load from a CDN"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        url = urlsplit(urljoin(page_url, asset))
        assert url.netloc == "localhost", asset
        got = client.get(url.path)
        assert got.status_code == 200, asset
        assert got.get_data(), asset
        got.close()
    # The page loads its spec from "openapi.json" next to it: the same document.
    spec_url = urlsplit(urljoin(page_url, "openapi.json")).path
    assert client.get(spec_url).get_json() == doc
