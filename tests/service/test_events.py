"""``GET /v1/jobs/{id}/events``: the stream reads the history rows; resume without a gap or a
duplicate; 204 after the end; caps; tenants; the dashboard's cookie."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from .helpers import QUICK, XOR, make_dataset, make_job, problem, train, walk
from .sse import named, parse


@pytest.fixture()
def app(database_url: str, tmp_path: Path) -> Any:
    from service.app import create_app

    app = create_app({"data_dir": tmp_path, "database_url": database_url,
                      "broker_url": "filesystem://", "stream_max_seconds": 1.5,
                      "stream_keepalive_seconds": 0.3, "streams_per_key": 2})
    app.config["TESTING"] = True
    return app


def events_of(client: Any, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    resp = client.get(url, **kwargs)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["X-Accel-Buffering"] == "no"
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_data(as_text=True)
    resp.close()  # frees its place under STREAMS_PER_KEY
    return parse(body)


def test_finished_job_streams_its_whole_history_then_the_end(app: Any, client: Any,
                                                             auth: dict[str, str]) -> None:
    job = train(app, client, auth, XOR, training={**QUICK, "epochs": 25})
    history = walk(client, auth, f"/v1/jobs/{job['id']}/history", 100)
    events = events_of(client, f"/v1/jobs/{job['id']}/events", headers=auth)
    epochs = named(events, "epoch")
    assert [int(e["id"]) for e in epochs] == list(range(1, 26))
    for event, row in zip(epochs, history, strict=True):
        progress = event["data"].pop("progress")
        assert event["data"] == row  # the history rows, nothing else
        assert progress["epoch"] == row["epoch"] and progress["epochs"] == 25
        assert progress["fraction"] == pytest.approx(row["epoch"] / 25)
    assert events[-1]["event"] == "end"
    assert events[-1]["data"] == client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert named(events, "status")[-1]["data"]["status"] == "succeeded"


def test_resume_has_no_gap_or_duplicate_and_a_reconnect_after_the_end_gets_204(
        app: Any, client: Any, auth: dict[str, str]) -> None:
    job = train(app, client, auth, XOR, training={**QUICK, "epochs": 20})
    url = f"/v1/jobs/{job['id']}/events"
    for kwargs in ({"headers": {**auth, "Last-Event-ID": "12"}},
                   {"headers": auth, "query_string": {"after": 12}}):
        events = events_of(client, url, **kwargs)
        assert [int(e["id"]) for e in named(events, "epoch")] == list(range(13, 21))
        assert events[-1]["event"] == "end" and events[-1]["id"] == "20"
    assert client.get(url, headers={**auth, "Last-Event-ID": "20"}).status_code == 204
    assert client.get(url + "?after=20", headers=auth).status_code == 204
    assert client.get(url + "?after=999", headers=auth).status_code == 204


def test_bad_resume_points_and_other_tenants(app: Any, client: Any, auth: dict[str, str],
                                             other_key: str) -> None:
    job = train(app, client, auth, XOR, training={**QUICK, "epochs": 3})
    url = f"/v1/jobs/{job['id']}/events"
    body = problem(client.get(url, headers={**auth, "Last-Event-ID": "abc"}), 422)
    assert body["errors"][0]["loc"] == ["header", "Last-Event-ID"]
    body = problem(client.get(url + "?after=-1", headers=auth), 422)
    assert body["errors"][0]["loc"][:2] == ["query", "after"]
    problem(client.get(url, headers={"Authorization": f"Bearer {other_key}"}), 404)
    problem(client.get(url), 401)
    problem(client.get("/v1/jobs/job_nope/events", headers=auth), 404)


def _add_rows(job_id: str, epochs: range, status: str = "running") -> None:
    from service import db, wake
    from service.models import EpochRecord, Job

    with db.session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status=status,
                                                             epoch=epochs.stop - 1))
        s.add_all([EpochRecord(job_id=job_id, epoch=e, loss=1.0 / e, learning_rate=0.1,
                               seconds=0.01) for e in epochs])
    wake.notify(job_id)


def test_a_running_job_streams_rows_as_they_are_committed(app: Any, client: Any,
                                                          auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 10})
    writer = threading.Timer(0.3, _add_rows, (job["id"], range(1, 4)))
    writer.start()
    events = events_of(client, f"/v1/jobs/{job['id']}/events", headers=auth)
    writer.join()
    # queued, then the rows and the change to running; the server closes at its time limit
    assert [e["data"]["status"] for e in named(events, "status")] == ["queued", "running"]
    assert [int(e["id"]) for e in named(events, "epoch")] == [1, 2, 3]
    assert any("comment" in e for e in events), "keep-alive comments"
    assert not named(events, "end")
    _add_rows(job["id"], range(4, 6), status="succeeded")
    events = events_of(client, f"/v1/jobs/{job['id']}/events",
                       headers={**auth, "Last-Event-ID": "3"})
    assert [int(e["id"]) for e in named(events, "epoch")] == [4, 5]
    assert [e["event"] for e in events if "event" in e][-1] == "end"


def test_open_streams_per_key_are_capped(app: Any, client: Any, auth: dict[str, str],
                                         other_key: str) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"])
    url = f"/v1/jobs/{job['id']}/events"
    first = client.get(url, headers=auth, buffered=False)
    second = client.get(url, headers=auth, buffered=False)
    assert first.status_code == second.status_code == 200
    body = problem(client.get(url, headers=auth), 429)
    assert "STREAMS_PER_KEY" in body["detail"]
    problem(client.get(url, headers={"Authorization": f"Bearer {other_key}"}), 404)
    first.close()  # a closed stream frees its place
    third = client.get(url, headers=auth, buffered=False)
    assert third.status_code == 200
    second.close()
    third.close()


def _sign_in(client: Any, key: str) -> None:
    page = client.get("/signin").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/signin", data={"api_key": key, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_dashboard_cookie_opens_the_stream_but_no_other_api_call(
        app: Any, client: Any, auth: dict[str, str], key: str) -> None:
    job = train(app, client, auth, XOR, training={**QUICK, "epochs": 3})
    _sign_in(client, key)
    events = events_of(client, f"/v1/jobs/{job['id']}/events")
    assert len(named(events, "epoch")) == 3
    problem(client.get(f"/v1/jobs/{job['id']}"), 401)  # the API still wants a bearer key
    problem(client.post(f"/v1/jobs/{job['id']}/cancel"), 401)


def test_wake_with_redis_delivers_a_notification(redis_url: str) -> None:
    from service import wake

    wake.configure(redis_url)
    try:
        with wake.Waiter("job_wake_test") as waiter:
            time.sleep(0.3)  # the listener subscribes
            waiter.clear()
            threading.Timer(0.05, wake.notify, ("job_wake_test",)).start()
            waiter.wait(30)
            assert waiter.event.is_set(), "woken by the notification, not by the timeout"
    finally:
        wake.configure("")


DIAGNOSED = {**QUICK, "epochs": 9, "diagnostics": {"every": 3}}


def _kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event"], e.get("id", "")) for e in events if e.get("event") in
            ("epoch", "diagnostics")]


def test_diagnostics_follow_the_row_of_their_epoch_and_resume_exactly(
        app: Any, client: Any, auth: dict[str, str]) -> None:
    job = train(app, client, auth, XOR, [{"units": 3, "activation": "relu"}, {"units": 1}],
                DIAGNOSED)
    url = f"/v1/jobs/{job['id']}/events"
    events = events_of(client, url, headers=auth)
    rows = [("epoch", str(e)) for e in range(1, 10)]
    for epoch in (9, 6, 3):  # each recorded epoch's diagnostics right after its row
        rows.insert(epoch, ("diagnostics", f"{epoch}.d"))
    assert _kinds(events) == rows
    recorded = walk(client, auth, f"/v1/jobs/{job['id']}/diagnostics", 100)
    assert [e["data"] for e in named(events, "diagnostics")] == recorded
    assert [r["layer"] for r in recorded[0]["layers"]] == [0, 1]
    end = events[-1]
    assert end["event"] == "end" and end["id"] == "9.d"
    assert end["data"]["warnings"] == job["warnings"]

    def resumed(**kwargs: Any) -> list[tuple[str, str]]:
        got = events_of(client, url, **kwargs)
        assert got[-1]["event"] == "end"
        return _kinds(got)

    # after the row of 6 (its diagnostics not seen yet): they come first
    assert resumed(headers={**auth, "Last-Event-ID": "6"}) == rows[rows.index(("epoch", "6")) + 1:]
    # after the diagnostics of 6, or after epoch 6: the next row
    tail = rows[rows.index(("diagnostics", "6.d")) + 1:]
    assert tail[0] == ("epoch", "7")
    assert resumed(headers={**auth, "Last-Event-ID": "6.d"}) == tail
    assert resumed(headers=auth, query_string={"after": 6}) == tail
    assert resumed(headers=auth, query_string={"after": 5}) == rows[rows.index(("epoch", "6")):]
    # the last epoch's row seen but not its diagnostics: not the end yet
    assert resumed(headers={**auth, "Last-Event-ID": "9"}) == [("diagnostics", "9.d")]
    assert client.get(url, headers={**auth, "Last-Event-ID": "9.d"}).status_code == 204
    assert client.get(url + "?after=9", headers=auth).status_code == 204
    for bad in ("6.x", "6.", ".d", "6.d.d"):
        body = problem(client.get(url, headers={**auth, "Last-Event-ID": bad}), 422)
        assert body["errors"][0]["loc"] == ["header", "Last-Event-ID"]


def test_a_job_without_diagnostics_streams_none(app: Any, client: Any,
                                                auth: dict[str, str]) -> None:
    job = train(app, client, auth, XOR, training={**QUICK, "epochs": 4})
    events = events_of(client, f"/v1/jobs/{job['id']}/events", headers=auth)
    assert not named(events, "diagnostics") and len(named(events, "epoch")) == 4
    assert events[-1]["id"] == "4"


def _add_diagnostics(job_id: str, epoch: int) -> None:
    from service import db, inspection

    layers = [{"layer": i, "activation": "tanh", "grad_norm_W": 0.5 + i, "grad_norm_b": 0.1,
               "weight_norm": 1.0, "update_ratio": 0.01, "activation_mean": 0.0,
               "activation_std": 0.3, "dead_fraction": None, "saturated_fraction": 0.0}
              for i in range(2)]
    with db.session_scope() as s:
        s.add_all(inspection.records(job_id, [(epoch, layers)]))


def test_a_running_job_streams_diagnostics_with_their_row(app: Any, client: Any,
                                                          auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    job = make_job(client, auth, ds["id"], training={**QUICK, "epochs": 10,
                                                     "diagnostics": {"every": 1}})
    url = f"/v1/jobs/{job['id']}/events"
    _add_diagnostics(job["id"], 1)
    _add_diagnostics(job["id"], 2)  # committed before its row (the recorder's order)
    writer = threading.Timer(0.3, _add_rows, (job["id"], range(1, 2)))
    writer.start()
    events = events_of(client, url, headers=auth)
    writer.join()
    assert _kinds(events) == [("epoch", "1"), ("diagnostics", "1.d")]  # not 2: no row yet
    assert named(events, "status")[-1]["id"] == "1.d"
    assert [r["grad_norm_W"] for r in named(events, "diagnostics")[0]["data"]["layers"]] == \
        [0.5, 1.5]
    _add_rows(job["id"], range(2, 4))
    events = events_of(client, url, headers={**auth, "Last-Event-ID": "1.d"})
    assert _kinds(events) == [("epoch", "2"), ("diagnostics", "2.d"), ("epoch", "3")]
