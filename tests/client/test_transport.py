"""Retries, idempotency keys and error mapping, against a scripted server (the answers a real
stack cannot give on cue: a 503 then a 201, a connection dropped before the answer)."""

from __future__ import annotations

import pytest

from backprop_client import (
    Client,
    ConnectionFailed,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    ValidationError,
)
from backprop_client.transport import retry_after_seconds

from .conftest import free_port_url
from .fake import FakeServer, json_answer

JOB = {"id": "job_1", "status": "queued", "dataset_id": "ds_1", "spec": {},
       "progress": {"epoch": 0, "epochs": 5, "fraction": 0.0, "eta_seconds": None},
       "metrics": None, "model_id": None, "error": None, "attempts": 0,
       "created_at": "2026-01-01T00:00:00+00:00", "started_at": None, "finished_at": None}
BUSY = {"title": "Service Unavailable", "status": 503, "detail": "the database is unreachable"}


def _client(fake: FakeServer, retries: int = 3) -> Client:
    return Client(fake.url, "bp_test", max_retries=retries, backoff=0.01, timeout=5)


def test_a_retried_job_create_sends_the_same_idempotency_key(fake: FakeServer) -> None:
    fake.on("POST", "/v1/jobs", json_answer(503, BUSY, **{"Retry-After": "0"}),
            lambda h: h.drop(), json_answer(202, JOB))
    job = _client(fake).jobs.create(dataset="ds_1", layers="4:tanh,1")
    assert job.id == "job_1"
    sent = fake.sent("POST", "/v1/jobs")
    keys = {r["headers"]["Idempotency-Key"] for r in sent}
    assert len(sent) == 3 and len(keys) == 1 and keys.pop().startswith("bpc-")
    assert all(r["headers"]["Authorization"] == "Bearer bp_test" for r in sent)


def test_two_creates_send_two_keys(fake: FakeServer) -> None:
    fake.on("POST", "/v1/jobs", json_answer(202, JOB))
    c = _client(fake)
    c.jobs.create(dataset="ds_1", layers="1")
    c.jobs.create(dataset="ds_1", layers="1", idempotency_key="mine")
    keys = [r["headers"]["Idempotency-Key"] for r in fake.sent("POST", "/v1/jobs")]
    assert keys[0] != keys[1] and keys[1] == "mine"


def test_429_is_retried_then_raised_with_its_problem(fake: FakeServer) -> None:
    limited = {"title": "Too Many Requests", "status": 429, "detail": "rate limit exceeded"}
    fake.on("GET", "/v1/jobs/job_1", json_answer(429, limited, **{"Retry-After": "0"}))
    with pytest.raises(RateLimited) as info:
        _client(fake, retries=2).jobs.get("job_1")
    assert len(fake.sent("GET", "/v1/jobs/job_1")) == 3
    assert (info.value.status, info.value.title, info.value.detail) == (
        429, "Too Many Requests", "rate limit exceeded")
    assert info.value.retry_after == 0


def test_a_long_retry_after_is_not_slept(fake: FakeServer) -> None:
    fake.on("GET", "/v1/jobs/job_1", json_answer(503, BUSY, **{"Retry-After": "3600"}))
    with pytest.raises(ServiceUnavailable) as info:
        _client(fake).jobs.get("job_1")
    assert len(fake.sent("GET", "/v1/jobs/job_1")) == 1 and info.value.retry_after == 3600


def test_a_dataset_upload_is_not_resent_after_a_dropped_connection(fake: FakeServer) -> None:
    """It may have been stored: sending it again could store it twice."""
    fake.on("POST", "/v1/datasets", lambda h: h.drop())
    with pytest.raises(ConnectionFailed):
        _client(fake).datasets.create([[0.0], [1.0]], [0.0, 1.0], name="x")
    assert len(fake.sent("POST", "/v1/datasets")) == 1


def test_a_refused_connection_is_retried_then_raised() -> None:
    c = Client(free_port_url(), "k", max_retries=2, backoff=0.01)
    with pytest.raises(ConnectionFailed, match="3 attempts"):
        c.datasets.create([[0.0], [1.0]], [0.0, 1.0], name="x")


def test_an_error_page_that_is_not_a_problem(fake: FakeServer) -> None:
    fake.on("GET", "/v1/models/m", lambda h: h.send_json(502, "<html>bad gateway</html>",
                                                          "text/html"))
    with pytest.raises(ServerError) as info:
        _client(fake).models.get("m")
    assert info.value.status == 502 and "bad gateway" in info.value.detail


def test_validation_errors_are_kept(fake: FakeServer) -> None:
    problem = {"title": "Unprocessable Content", "status": 422, "detail": "network.layers: x",
               "errors": [{"loc": ["network", "layers"], "msg": "x"}]}
    fake.on("POST", "/v1/jobs", json_answer(422, problem))
    with pytest.raises(ValidationError) as info:
        _client(fake).jobs.create(dataset="d", layers="1")
    assert info.value.errors == [{"loc": ["network", "layers"], "msg": "x"}]
    assert len(fake.sent("POST", "/v1/jobs")) == 1  # a 422 is an answer, not retried


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
