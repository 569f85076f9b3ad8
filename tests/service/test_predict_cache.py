"""The predict hot path: keys and models served from the process's caches, within their bound.

The bound is ``cache_ttl_seconds``: a key revoked or a model deleted elsewhere (another web
process, the CLI) stops working here once that much time has passed; tests move the caches'
clocks on instead of sleeping. ``tests/e2e/test_cache.py`` checks the same on real gunicorn.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import delete, event

from .helpers import QUICK, XOR, later, problem, train, wait_until

ONE_ROW = {"inputs": [[0.0, 1.0]]}


@pytest.fixture()
def model(app: Any, client: Any, auth: dict[str, str]) -> dict[str, Any]:
    return train(app, client, auth, XOR, [{"units": 3}, {"units": 1}], {**QUICK, "epochs": 3})


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements this process sends while the block runs."""
    from service import db

    sent: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    engine = db.engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def predict(client: Any, headers: dict[str, str], model_id: str) -> Any:
    return client.post(f"/v1/models/{model_id}/predict", headers=headers, json=ONE_ROW)


def test_cached_predict_makes_no_database_round_trip(
        client: Any, auth: dict[str, str], model: dict[str, Any]) -> None:
    with statements() as cold:
        assert predict(client, auth, model["model_id"]).status_code == 200
    assert len(cold) >= 2  # key, model row (and the weights blob): the counter counts
    with statements() as warm:
        for _ in range(3):
            assert predict(client, auth, model["model_id"]).status_code == 200
    assert warm == []


def test_entries_are_looked_up_again_after_the_ttl(
        app: Any, client: Any, auth: dict[str, str], model: dict[str, Any]) -> None:
    assert predict(client, auth, model["model_id"]).status_code == 200
    later(app, app.config["SETTINGS"].cache_ttl_seconds)
    with statements() as sent:
        assert predict(client, auth, model["model_id"]).status_code == 200
    # the key and the model row again, but not the weights: a model never changes
    assert len(sent) == 2, sent
    assert not any("blobs" in s for s in sent)


def test_past_half_the_ttl_the_entries_are_confirmed_off_the_request(
        app: Any, client: Any, auth: dict[str, str], model: dict[str, Any]) -> None:
    from service import db

    assert predict(client, auth, model["model_id"]).status_code == 200
    later(app, app.config["SETTINGS"].cache_ttl_seconds * 0.6)
    threads: list[str] = []

    def record(*_: Any) -> None:
        threads.append(threading.current_thread().name)

    caches = [app.extensions[name].trusted for name in ("key_cache", "model_cache")]
    confirmed = [at for c in caches for _, at in c._items.values()]
    event.listen(db.engine(), "before_cursor_execute", record)
    try:
        assert predict(client, auth, model["model_id"]).status_code == 200
        for cache in caches:  # no background refresh queued or running
            assert wait_until(lambda cache=cache: not cache._queued)
    finally:
        event.remove(db.engine(), "before_cursor_execute", record)
    assert threads == ["trust-cache-refresh"] * 2  # the key and the model row, not the request
    again = [at for c in caches for _, at in c._items.values()]
    assert len(again) == len(confirmed) == 2  # the key and the model, confirmed again:
    assert all(new > old for new, old in zip(again, confirmed, strict=True))


def test_revoked_key_stops_within_the_ttl(app: Any, client: Any, key: str,
                                          auth: dict[str, str], model: dict[str, Any]) -> None:
    from service import auth as service_auth
    from service import db

    assert predict(client, auth, model["model_id"]).status_code == 200
    with db.session_scope() as s:  # as the CLI (another process) does it
        assert service_auth.revoke_key(s, key) == 1
    later(app, app.config["SETTINGS"].cache_ttl_seconds)
    err = problem(predict(client, auth, model["model_id"]), 401)
    assert "revoked" in err["detail"]
    problem(client.get("/v1/models", headers=auth), 401)
    problem(predict(client, auth, model["model_id"]), 401)  # a failure is not cached as a pass


def test_model_deleted_elsewhere_stops_within_the_ttl(
        app: Any, client: Any, auth: dict[str, str], model: dict[str, Any]) -> None:
    from service import db
    from service.models import Blob, TrainedModel

    assert predict(client, auth, model["model_id"]).status_code == 200
    with db.session_scope() as s:  # another web process deletes it
        blob_id = s.get(TrainedModel, model["model_id"]).blob_id
        s.execute(delete(TrainedModel).where(TrainedModel.id == model["model_id"]))
        s.execute(delete(Blob).where(Blob.id == blob_id))
    later(app, app.config["SETTINGS"].cache_ttl_seconds)
    err = problem(predict(client, auth, model["model_id"]), 404)
    assert model["model_id"] in err["detail"]
    assert model["model_id"] not in app.extensions["model_cache"]._models  # weights let go


def test_delete_in_this_process_is_at_once(client: Any, auth: dict[str, str],
                                           model: dict[str, Any]) -> None:
    assert predict(client, auth, model["model_id"]).status_code == 200
    assert client.delete(f"/v1/models/{model['model_id']}", headers=auth).status_code == 204
    problem(predict(client, auth, model["model_id"]), 404)


def test_other_tenant_is_404_from_the_cache(client: Any, auth: dict[str, str], other_key: str,
                                            model: dict[str, Any]) -> None:
    other = {"Authorization": f"Bearer {other_key}"}
    assert client.get("/v1/models", headers=other).status_code == 200  # other's key cached
    assert predict(client, auth, model["model_id"]).status_code == 200  # the model cached
    with statements() as sent:
        err = problem(predict(client, other, model["model_id"]), 404)
    assert sent == []  # answered from the cache, and still a 404
    assert err["detail"] == f"no model with id {model['model_id']!r}"
    assert predict(client, auth, model["model_id"]).status_code == 200


def test_key_cache_is_bounded_and_refreshes_a_busy_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from service import auth as service_auth

    now, looked_up = [0.0], []

    def identity(_: Any, digest: str) -> service_auth.Identity:
        looked_up.append(digest)
        return service_auth.Identity("tn_" + digest[:4], "key_" + digest[:4])

    monkeypatch.setattr(service_auth, "_identity", identity)
    refreshed_on: list[str] = []

    def refresh(digest: str) -> service_auth.Identity:
        refreshed_on.append(threading.current_thread().name)
        return identity(None, digest)

    monkeypatch.setattr(service_auth, "_identity_in_own_session", refresh)
    cache = service_auth.KeyCache(ttl=1.0, size=2, clock=lambda: now[0])
    for k in ("a", "b", "c", "c"):
        cache.authenticate(f"Bearer {k}", lambda: None)
    digest = service_auth.hash_key
    assert looked_up == [digest("a"), digest("b"), digest("c")]
    assert cache.trusted.keys() == [digest("b"), digest("c")]  # the oldest went
    now[0] = 0.49
    cache.authenticate("Bearer c", lambda: None)
    assert len(looked_up) == 3
    now[0] = 0.5  # half its ttl: served at once, confirmed again in the background
    cache.authenticate("Bearer c", lambda: None)
    assert wait_until(lambda: not cache.trusted._queued)  # the background refresh is done
    assert len(looked_up) == 4 and refreshed_on == ["trust-cache-refresh"]
    now[0] = 1.2  # trusted from 0.5 on (it would have lapsed at 1.0): no lookup
    cache.authenticate("Bearer c", lambda: None)
    assert len(looked_up) == 4


def test_model_info_cache_is_bounded(app: Any, client: Any, auth: dict[str, str]) -> None:
    models = [train(app, client, auth, XOR, [{"units": 2}, {"units": 1}],
                    {**QUICK, "epochs": 2})["model_id"] for _ in range(3)]
    assert predict(client, auth, models[0]).status_code == 200
    cache = app.extensions["model_cache"]
    cache.trusted.size, cache.size = 2, 2
    for model_id in models[1:]:
        assert predict(client, auth, model_id).status_code == 200
    assert cache.trusted.keys() == models[1:] and list(cache._models) == models[1:]
    assert predict(client, auth, models[0]).status_code == 200  # looked up and loaded again


def test_hooks_and_views_are_inspected_once_not_per_request(
        client: Any, auth: dict[str, str], model: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import flask.app

    asked: list[Any] = []
    real = flask.app.iscoroutinefunction

    def counting(func: Any) -> bool:
        asked.append(func)
        return real(func)

    monkeypatch.setattr(flask.app, "iscoroutinefunction", counting)
    assert predict(client, auth, model["model_id"]).status_code == 200
    first = len(asked)
    assert first > 0  # the first request through these hooks asks about each of them
    for _ in range(3):
        assert predict(client, auth, model["model_id"]).status_code == 200
    assert len(asked) == first
