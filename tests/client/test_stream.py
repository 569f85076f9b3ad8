"""The event stream as the contract gives it (``event: epoch`` rows with ``id:`` = the epoch,
``event: status``, a last ``event: end`` with the job; ``Last-Event-ID`` to resume; ``204`` after
the end), parsed and followed across a cut connection; and the fallback to polling."""

from __future__ import annotations

import io
import json

import pytest

from backprop_client import Client, JobCancelled, JobFailed
from backprop_client.progress import ProgressBar
from backprop_client.stream import lines, parse

from .fake import FakeServer, json_answer
from .test_transport import JOB


def _job(**changes: object) -> dict:
    return {**JOB, **changes}


DONE = _job(status="succeeded", model_id="mdl_1",
            progress={"epoch": 3, "epochs": 3, "fraction": 1.0, "eta_seconds": 0.0},
            metrics={"loss": 0.1, "val_loss": 0.2})


def _epoch(n: int) -> str:
    row = {"epoch": n, "loss": 1.0 / n, "val_loss": 1.5 / n, "accuracy": None,
           "val_accuracy": None, "learning_rate": 0.01, "seconds": 0.01,
           "progress": {"epoch": n, "epochs": 3, "fraction": n / 3, "eta_seconds": 3.0 - n}}
    return f"id: {n}\nevent: epoch\ndata: {json.dumps(row)}\n\n"


def test_parse_follows_the_spec() -> None:
    text = (": keep-alive\n\nid: 1\nevent: epoch\ndata: {\"a\":\ndata: 1}\n\n"
            "event: status\ndata: {\"status\": \"running\"}\r\n\r\n"
            "data: no event name\n\nevent: empty\n\n")
    events = list(parse(lines([text[:7].encode(), text[7:30].encode(), text[30:].encode()])))
    assert [(e.event, e.data, e.id) for e in events] == [
        ("epoch", '{"a":\n1}', "1"), ("status", '{"status": "running"}', "1"),
        ("message", "no event name", "1")]


def test_lines_split_on_newlines_only() -> None:
    data = 'data: {"name": "a\u2028b"}\n\n'.encode()
    assert list(lines([data[:5], data[5:]])) == ['data: {"name": "a\u2028b"}', ""]


def test_wait_follows_the_stream_across_a_cut(fake: FakeServer) -> None:
    fake.on("GET", "/v1/jobs/job_1", json_answer(200, _job(status="running")),
            json_answer(200, DONE))
    fake.on("GET", "/v1/jobs/job_1/events",
            lambda h: h.send_events([_epoch(1), _epoch(2)[:20]], complete=False),
            lambda h: h.send_events([_epoch(2), _epoch(3),
                                     f"event: end\ndata: {json.dumps(DONE)}\n\n"],
                                    complete=True))
    c = Client(fake.url, "k", backoff=0.01)
    job = c.jobs.wait("job_1", progress=False)
    assert job.status == "succeeded" and job.model_id == "mdl_1"
    streams = fake.sent("GET", "/v1/jobs/job_1/events")
    assert len(streams) == 2
    assert "Last-Event-ID" not in streams[0]["headers"]
    assert streams[1]["headers"]["Last-Event-ID"] == "1"  # epoch 2 was cut mid-event
    assert streams[0]["headers"]["Accept"] == "text/event-stream"


def test_events_yield_diagnostics_and_resume_after_their_id(fake: FakeServer) -> None:
    diag = {"epoch": 1, "layers": [{"layer": 0, "activation": "tanh", "grad_norm_W": 0.5}]}
    fake.on("GET", "/v1/jobs/job_1/events",
            lambda h: h.send_events([_epoch(1), f"id: 1.d\nevent: diagnostics\ndata: "
                                     f"{json.dumps(diag)}\n\n", _epoch(2)[:20]],
                                    complete=False),
            lambda h: h.send_events([_epoch(2), f"event: end\ndata: {json.dumps(DONE)}\n\n"],
                                    complete=True))
    events = list(Client(fake.url, "k", backoff=0.01).jobs.events("job_1"))
    assert [(e.event, e.id) for e in events] == [
        ("epoch", "1"), ("diagnostics", "1.d"), ("epoch", "2"), ("end", "2")]
    assert events[1].json() == diag
    streams = fake.sent("GET", "/v1/jobs/job_1/events")
    assert streams[1]["headers"]["Last-Event-ID"] == "1.d"  # the diagnostics were seen


def test_wait_after_the_end_gets_a_204_then_the_job(fake: FakeServer) -> None:
    fake.on("GET", "/v1/jobs/job_1", json_answer(200, _job(status="running")),
            json_answer(200, _job(status="failed", error={"title": "Diverged",
                                                          "detail": "loss is NaN at epoch 2"})))
    fake.on("GET", "/v1/jobs/job_1/events", lambda h: h.send_json(204, None))
    with pytest.raises(JobFailed) as info:
        Client(fake.url, "k").jobs.wait("job_1", progress=False)
    assert (info.value.title, info.value.detail) == ("Diverged", "loss is NaN at epoch 2")
    assert info.value.job.status == "failed"


def test_wait_polls_when_the_service_has_no_stream(fake: FakeServer) -> None:
    fake.on("GET", "/v1/jobs/job_1", json_answer(200, _job(status="queued")),
            json_answer(200, _job(status="running")),
            json_answer(200, _job(status="cancelled", error={"title": "Cancelled",
                                                             "detail": "cancelled by request"})))
    # no events route scripted: the fake answers 404 problem+json, as an older service would
    c = Client(fake.url, "k")
    with pytest.raises(JobCancelled, match="cancelled by request"):
        c.jobs.wait("job_1", progress=False)
    assert len(fake.sent("GET", "/v1/jobs/job_1/events")) == 1
    assert len(fake.sent("GET", "/v1/jobs/job_1")) == 3


def test_progress_bar_says_running_once_epochs_come_before_any_status() -> None:
    out = io.StringIO()
    bar = ProgressBar("job_1", 200, stream=out)
    bar.update(epoch=0)
    assert bar.status == "queued"
    bar.update(epoch=20, loss=0.3)  # a replayed epoch event: no status event yet
    assert bar.status == "running" and "job_1 running" in bar.line()
    bar.update(status="succeeded")
    bar.update(epoch=200)
    assert bar.status == "succeeded"


def test_progress_bar_shows_epoch_losses_and_eta() -> None:
    out = io.StringIO()
    bar = ProgressBar("job_1", 200, stream=out)
    bar.update(epoch=50, loss=0.51234, val_loss=0.6, eta=75.0, status="running")
    bar.close()
    first = out.getvalue().splitlines()[0]
    assert "epoch 50/200" in first and "25%" in first
    assert "loss 0.5123" in first and "val_loss 0.6" in first and "ETA 01:15" in first
