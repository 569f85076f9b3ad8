"""Shared helpers for the HTTP tests: payloads, problem-details checks, training in-process."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any

PROBLEM_JSON = "application/problem+json"

XOR: dict[str, Any] = {"name": "xor", "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]],
                       "targets": [[0], [1], [1], [0]]}
# Two well separated blobs in 2-D, three classes with string labels.
BLOBS: dict[str, Any] = {
    "name": "blobs",
    "inputs": [[0, 0], [0.2, 0.1], [0.1, 0.3], [5, 5], [5.2, 4.9], [4.8, 5.1],
               [0, 5], [0.3, 5.2], [-0.1, 4.8]],
    "labels": ["a", "a", "a", "b", "b", "b", "c", "c", "c"],
    "feature_names": ["u", "v"],
}
# A small, quick training recipe: full batch, few epochs, fixed seed.
QUICK: dict[str, Any] = {"optimizer": {"name": "adam", "learning_rate": 0.05},
                         "epochs": 30, "batch_size": "full", "seed": 7}


def problem(resp: Any, status: int) -> dict[str, Any]:
    """Assert ``resp`` is an RFC 9457 problem with ``status``; return its body."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == PROBLEM_JSON, resp.headers.get("Content-Type")
    body = resp.get_json(force=True)
    for key in ("type", "title", "status", "detail"):
        assert key in body, (key, body)
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in body["detail"]
    if "errors" in body:
        assert body["errors"], "an errors list, when present, is not empty"
        for err in body["errors"]:
            assert set(err) == {"loc", "msg"}, err
            assert isinstance(err["loc"], list) and isinstance(err["msg"], str)
    return body


def locs(body: dict[str, Any]) -> list[list[str | int]]:
    return [err["loc"] for err in body.get("errors") or []]


ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)$")


def utc_time(value: str) -> datetime:
    """Parse an ISO 8601 UTC timestamp, asserting it is one."""
    assert isinstance(value, str) and ISO_UTC.match(value), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed


def make_dataset(client: Any, auth: dict[str, str], body: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    resp = client.post("/v1/datasets", headers=auth, json=body or XOR)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def make_job(client: Any, auth: dict[str, str], dataset_id: str,
             layers: list[dict[str, Any]] | None = None,
             training: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"dataset_id": dataset_id,
                            "network": {"layers": layers or [{"units": 4}, {"units": 1}]}}
    if training is not None:
        body["training"] = training
    resp = client.post("/v1/jobs", headers=auth, json=body)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def run(app: Any, job_id: str) -> str | None:
    from workers.runner import run_job

    return run_job(job_id, app.config["SETTINGS"])


def train(app: Any, client: Any, auth: dict[str, str], dataset: dict[str, Any] | None = None,
          layers: list[dict[str, Any]] | None = None,
          training: dict[str, Any] | None = None) -> dict[str, Any]:
    """Upload ``dataset``, train a job on it in-process and return the finished job."""
    ds = make_dataset(client, auth, dataset)
    job = make_job(client, auth, ds["id"], layers, training or QUICK)
    assert run(app, job["id"]) == "succeeded"
    resp = client.get(f"/v1/jobs/{job['id']}", headers=auth)
    assert resp.status_code == 200
    return resp.get_json()


def walk(client: Any, auth: dict[str, str], url: str, limit: int) -> list[dict[str, Any]]:
    """All items of a paginated list, following ``next_cursor``; asserts page sizes."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    sep = "&" if "?" in url else "?"
    for _ in range(1000):
        query = f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        resp = client.get(query, headers=auth)
        assert resp.status_code == 200, resp.get_json()
        page = resp.get_json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit
    raise AssertionError("pagination did not end")


def later(app: Any, seconds: float) -> None:
    """Move the app's key and model caches ``seconds`` on, as if that time had passed."""
    for name in ("key_cache", "model_cache"):
        cache = app.extensions.get(name)
        if cache is not None:
            clock = cache.trusted.clock
            cache.trusted.clock = lambda clock=clock: clock() + seconds


def wait_until(cond: Any, timeout: float = 5.0) -> bool:
    """Whether ``cond()`` came true within ``timeout`` seconds (polled every millisecond)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
