"""The event stream on real processes: a job trained by the worker streams every epoch and
its end; streams at their cap do not starve ordinary requests on gunicorn (gthread)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from .conftest import Stack

SLOW_JOB = {
    "network": {"layers": [{"units": 8}, {"units": 1}]},
    "training": {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "epochs": 60,
                 "batch_size": 1, "seed": 1},
}


def dataset(stack: Stack, rows: int = 400) -> str:
    inputs = [[i / rows, (i * 7 % rows) / rows] for i in range(rows)]
    r = stack.post("/v1/datasets", json={"name": "line", "inputs": inputs,
                                         "targets": [[x + y] for x, y in inputs]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def read_events(resp: requests.Response) -> list[dict]:
    events, current = [], {}
    for line in resp.iter_lines(decode_unicode=True):
        if line == "":
            if current:
                events.append(current)
            current = {}
            if events and events[-1].get("event") == "end":
                break
            continue
        field, _, value = line.partition(":")
        if field:
            current[field] = json.loads(value.strip()) if field == "data" else value.strip()
    return events


def test_a_worker_job_streams_every_epoch_then_its_end(stack: Stack) -> None:
    r = stack.post("/v1/jobs", json={"dataset_id": dataset(stack), **SLOW_JOB})
    job_id = r.json()["id"]
    with stack.http.get(f"{stack.base}/v1/jobs/{job_id}/events", stream=True,
                        timeout=120) as resp:
        assert resp.status_code == 200
        events = read_events(resp)
    epochs = [int(e["id"]) for e in events if e.get("event") == "epoch"]
    assert epochs == list(range(1, 61))
    statuses = [e["data"]["status"] for e in events if e.get("event") == "status"]
    assert "running" in statuses and statuses[-1] == "succeeded"
    assert events[-1]["event"] == "end" and events[-1]["data"]["status"] == "succeeded"
    again = stack.http.get(f"{stack.base}/v1/jobs/{job_id}/events",
                           headers={"Last-Event-ID": "60"}, timeout=30)
    assert again.status_code == 204


@pytest.mark.slow
def test_streams_at_their_cap_leave_requests_fast(tmp_path: Path) -> None:
    """Eight streams per key open (no worker: the job stays queued); ordinary calls still
    answer, and a ninth stream is refused with 429."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'service.db'}", "filesystem://",
                  STREAMS_PER_KEY="8", STREAM_KEEPALIVE_SECONDS="1").start(only=("api",))
    streams: list[requests.Response] = []
    try:
        job_id = stack.post("/v1/jobs", json={"dataset_id": dataset(stack, 8),
                                              **SLOW_JOB}).json()["id"]
        url = f"{stack.base}/v1/jobs/{job_id}/events"
        for _ in range(8):
            resp = requests.get(url, headers=stack.http.headers, stream=True, timeout=30)
            assert resp.status_code == 200, resp.text
            next(resp.iter_lines())  # the stream is open and serving
            streams.append(resp)
        over = requests.get(url, headers=stack.http.headers, timeout=30)
        assert over.status_code == 429, over.text
        slowest = 0.0
        for _ in range(20):
            start = time.monotonic()
            assert stack.get("/v1/jobs?limit=5").status_code == 200
            assert stack.get(f"/v1/jobs/{job_id}").status_code == 200
            slowest = max(slowest, time.monotonic() - start)
        assert slowest < 5.0, f"a /v1 call took {slowest:.1f} s while streams were open"
    finally:
        for resp in streams:
            resp.close()
        stack.stop()


def test_a_shutdown_ends_open_streams_instead_of_waiting_for_them(tmp_path: Path) -> None:
    """SIGTERM ends the streams (gunicorn_conf's hook): the stream's request completes and is
    logged, where gthread would otherwise hold the exit for graceful_timeout and then kill it
    unlogged."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'service.db'}", "filesystem://"
                  ).start(only=("api",))
    try:
        job_id = stack.post("/v1/jobs", json={"dataset_id": dataset(stack, 8),
                                              **SLOW_JOB}).json()["id"]
        resp = requests.get(f"{stack.base}/v1/jobs/{job_id}/events",
                            headers=stack.http.headers, stream=True, timeout=30)
        assert resp.status_code == 200
        next(resp.iter_lines())
    finally:
        stack.stop()
    body = b"".join(resp.iter_content(None))  # the server ended it: EOF, not an error
    assert b"event: end" not in body
    assert f"GET /v1/jobs/{job_id}/events 200" in stack.logs("api")
