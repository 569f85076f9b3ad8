"""Request ids, the request log line and metrics, the metrics token, the history order."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .helpers import QUICK, make_dataset, problem, train, walk


def test_request_id_is_made_returned_and_logged(client: Any, auth: dict[str, str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.request"):
        resp = client.get("/v1/datasets", headers=auth)
    rid = resp.headers["X-Request-ID"]
    assert len(rid) == 32
    line = next(r for r in caplog.records if r.name == "service.request")
    assert line.request_id == rid
    assert (line.method, line.route, line.status) == ("GET", "/v1/datasets", 200)
    assert line.duration_ms >= 0
    assert client.get("/v1/datasets", headers=auth).headers["X-Request-ID"] != rid


def test_request_id_from_the_client_is_kept_and_in_problems(client: Any,
                                                            auth: dict[str, str]) -> None:
    resp = client.get("/v1/jobs/job_nope", headers={**auth, "X-Request-ID": "abc-123"})
    body = problem(resp, 404)
    assert resp.headers["X-Request-ID"] == "abc-123"
    assert body["request_id"] == "abc-123"
    # not a short token: replaced, never echoed into headers or logs
    resp = client.get("/v1/jobs/job_nope", headers={**auth, "X-Request-ID": "x" * 500})
    assert resp.headers["X-Request-ID"] != "x" * 500
    assert problem(resp, 404)["request_id"] == resp.headers["X-Request-ID"]
    assert problem(client.get("/v1/datasets"), 401)["request_id"]


def test_json_log_lines(caplog: pytest.LogCaptureFixture, monkeypatch: Any) -> None:
    import orjson

    from service import logs

    monkeypatch.setenv("LOG_FORMAT", "json")
    cfg = logs.dict_config()
    formatter = cfg["formatters"]["service"]["()"]()
    record = logging.LogRecord("workers.jobs", logging.WARNING, __file__, 1, "job %s failed",
                               ("job_1",), None)
    record.job_id, record.title = "job_1", "Training diverged"
    line = orjson.loads(formatter.format(record))
    assert line["message"] == "job job_1 failed" and line["level"] == "WARNING"
    assert line["job_id"] == "job_1" and line["title"] == "Training diverged"
    text = logs.TextFormatter().format(record)
    assert "job job_1 failed" in text and 'title="Training diverged"' in text
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.dict_config()


def _families(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {f.name: f for f in text_string_to_metric_families(resp.get_data(as_text=True))}


def test_request_metrics_use_route_templates(client: Any, auth: dict[str, str]) -> None:
    client.get("/v1/jobs/job_nope", headers=auth)
    client.get("/no/such/page")
    fams = _families(client.get("/metrics"))
    samples = fams["backprop_http_requests"].samples
    routes = {s.labels["route"] for s in samples}
    assert "/v1/jobs/<job_id>" in routes and "unmatched" in routes
    assert not any("job_nope" in r for r in routes)
    hit = [s for s in samples if s.labels == {"method": "GET", "route": "/v1/jobs/<job_id>",
                                              "status": "404"}]
    assert hit and hit[0].value >= 1
    assert "backprop_http_request_duration_seconds" in fams
    for name in ("backprop_jobs", "backprop_oldest_queued_job_age_seconds",
                 "backprop_workers_alive", "backprop_queue_length", "backprop_broker_up"):
        assert name in fams, name


@pytest.fixture()
def token_client(database_url: str, tmp_path: Path) -> Any:
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://", "metrics_token": "s3cret"})
    return app.test_client()


def test_metrics_token(token_client: Any) -> None:
    resp = token_client.get("/metrics")
    problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    problem(token_client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    problem(token_client.get("/metrics", headers={"Authorization": "Basic s3cret"}), 401)
    ok = token_client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert "backprop_jobs" in _families(ok)
    assert token_client.get("/healthz").status_code == 200  # probes stay open


def test_worker_metrics_endpoint_checks_the_token() -> None:
    from service.config import Settings
    from workers.ops import metrics_app

    app = metrics_app(Settings(metrics_token="s3cret"))
    seen: list[str] = []

    def call(path: str, auth: str | None = None) -> bytes:
        env = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
        if auth:
            env["HTTP_AUTHORIZATION"] = auth
        return b"".join(app(env, lambda status, headers: seen.append(status)))

    call("/metrics")
    assert seen[-1].startswith("401")
    assert b"backprop_jobs_finished" in call("/metrics", "Bearer s3cret")
    assert seen[-1].startswith("200")


def test_history_order_and_cursor_both_ways(app: Any, client: Any,
                                            auth: dict[str, str]) -> None:
    job = train(app, client, auth, training={**QUICK, "epochs": 12})
    url = f"/v1/jobs/{job['id']}/history"
    tail = client.get(f"{url}?order=desc&limit=5", headers=auth).get_json()
    assert [r["epoch"] for r in tail["items"]] == [12, 11, 10, 9, 8]
    assert tail["next_cursor"] == "8"
    back = client.get(f"{url}?order=desc&limit=5&cursor=8", headers=auth).get_json()
    assert [r["epoch"] for r in back["items"]] == [7, 6, 5, 4, 3]
    assert [r["epoch"] for r in walk(client, auth, f"{url}?order=desc", 5)] == \
        list(range(12, 0, -1))
    assert [r["epoch"] for r in walk(client, auth, url, 5)] == list(range(1, 13))
    newer = client.get(f"{url}?cursor=10", headers=auth).get_json()
    assert [r["epoch"] for r in newer["items"]] == [11, 12] and newer["next_cursor"] is None
    for bad in ("²", "-1", "1e3", "9" * 30):
        body = problem(client.get(f"{url}?cursor={bad}", headers=auth), 422)
        assert body["errors"][0]["loc"] == ["query", "cursor"]
    assert problem(client.get(f"{url}?order=newest", headers=auth), 422)["errors"][0]["loc"] \
        == ["query", "order"]


def test_queued_cancel_counts_as_a_finished_job(client: Any, auth: dict[str, str]) -> None:
    from service import metrics

    before = metrics.JOBS_FINISHED.labels("cancelled")._value.get()
    ds = make_dataset(client, auth)
    job = client.post("/v1/jobs", headers=auth, json={
        "dataset_id": ds["id"], "network": {"layers": [{"units": 1}]}}).get_json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth).status_code == 202
    assert metrics.JOBS_FINISHED.labels("cancelled")._value.get() == before + 1


def test_log_lines_are_written_whole_without_the_handler_lock(tmp_path: Any) -> None:
    """The handler takes no lock (a thread blocked in its write must not queue every other
    thread that logs; see ``service.logs.LineHandler``), and lines from threads at once stay
    whole; a stream without a file descriptor is written as ``StreamHandler`` does it."""
    import io
    import threading

    from service import logs

    assert logs.dict_config()["handlers"]["stderr"]["class"] == "service.logs.LineHandler"
    path = tmp_path / "log.txt"
    with open(path, "w") as stream:
        handler = logs.LineHandler(stream)
        handler.setFormatter(logs.TextFormatter())
        log = logging.getLogger("test.linehandler")
        log.propagate, log.level = False, logging.INFO
        log.addHandler(handler)
        try:
            handler.acquire()  # held elsewhere: logging goes on regardless
            done = threading.Thread(target=log.info, args=("while the lock is held",))
            done.start()
            done.join(5)
            assert not done.is_alive()
            handler.release()

            def burst(n: int) -> None:
                for i in range(300):
                    log.info("thread %d line %d %s", n, i, "x" * 500)

            threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        finally:
            log.removeHandler(handler)
    lines = path.read_text().splitlines()
    assert "while the lock is held" in lines[0]
    assert len(lines) == 1 + 8 * 300
    assert all(line.endswith(" " + "x" * 500) and "test.linehandler: thread" in line
               for line in lines[1:])
    buffer = io.StringIO()
    fallback = logs.LineHandler(buffer)
    fallback.setFormatter(logs.TextFormatter())
    fallback.handle(logging.LogRecord("t", logging.INFO, __file__, 1, "to a buffer", (), None))
    assert buffer.getvalue().endswith("t: to a buffer\n")
