"""Rate limits: per tenant however the header is spelt, per address without a valid key, one
budget across app instances (processes) sharing DATA_DIR, Retry-After only when limited, and a
store that is down lets requests through (counted, named by /readyz)."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from service import auth, db

from .helpers import problem


def _app(tmp_path: Path, database_url: str, **overrides: Any) -> Any:
    from service.app import create_app

    return create_app({"data_dir": tmp_path, "database_url": database_url,
                       "broker_url": "filesystem://", "rate_limit": "3 per minute",
                       **overrides})


def _key(tenant: str) -> str:
    with db.session_scope() as s:
        return auth.create_key(s, f"{tenant}-{secrets.token_hex(3)}")


def test_rate_limit_is_per_tenant_and_answers_429_problem(database_url: str,
                                                         tmp_path: Path) -> None:
    client: Any = _app(tmp_path, database_url).test_client()
    first, second = _key("rl-a"), _key("rl-b")
    a = {"Authorization": f"Bearer {first}"}
    ok = client.get("/v1/datasets", headers=a)
    assert ok.status_code == 200 and ok.headers["X-RateLimit-Limit"] == "3"
    assert [client.get("/v1/datasets", headers=a).status_code for _ in range(2)] == [200] * 2
    r = client.get("/v1/jobs", headers=a)
    body = problem(r, 429)
    assert "RATE_LIMIT" in body["detail"]
    assert 0 < int(r.headers["Retry-After"]) <= 60
    # another tenant has its own budget; operational endpoints are not limited
    assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {second}"}
                      ).status_code == 200
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))


def test_a_request_is_at_most_one_store_round_trip_and_remaining_counts_down(
        database_url: str, tmp_path: Path) -> None:
    app = _app(tmp_path, database_url)
    client: Any = app.test_client()
    storage = app.extensions["ratelimit"].storage
    calls: list[str] = []

    def counted(name: str) -> Any:
        real = getattr(storage, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)
        return call

    for name in ("count", "incr", "get", "get_expiry"):
        setattr(storage, name, counted(name))
    h = {"Authorization": f"Bearer {_key('rl-count')}"}
    remaining = [client.get("/v1/datasets", headers=h).headers["X-RateLimit-Remaining"]
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    assert calls == ["count"] * 3  # a small budget is never taken in blocks: exact
    assert client.get("/v1/datasets", headers=h).status_code == 429
    assert calls[3:] == ["count"]  # the window's end comes with the count


def test_spellings_of_one_key_share_one_budget(database_url: str, tmp_path: Path) -> None:
    client: Any = _app(tmp_path, database_url).test_client()
    key = _key("rl-spell")
    spellings = [f"Bearer {key}", f"bearer {key}", f"Bearer  {key}", f"BEARER {key} "]
    codes = [client.get("/v1/datasets", headers={"Authorization": h}).status_code
             for h in spellings]
    assert codes == [200, 200, 200, 429]


def test_requests_without_a_valid_key_are_limited_per_address(database_url: str,
                                                              tmp_path: Path) -> None:
    client: Any = _app(tmp_path, database_url).test_client()
    codes = [client.get("/v1/datasets", headers={"Authorization": f"Bearer bp_{i}"}).status_code
             for i in range(3)]
    assert codes == [401] * 3
    problem(client.get("/v1/datasets", headers={"Authorization": "Bearer bp_fresh"}), 429)
    problem(client.get("/v1/datasets"), 429)  # no header at all: the same address
    other = client.get("/v1/datasets", headers={"Authorization": "Bearer bp_x"},
                       environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 401  # another address has its own budget
    # a valid key is not charged for its address's failures
    assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {_key('rl-ok')}"}
                      ).status_code == 200


def test_processes_sharing_data_dir_share_one_budget(database_url: str, tmp_path: Path) -> None:
    """The embedded run: each gunicorn process builds its own app on the same DATA_DIR."""
    one, two = (_app(tmp_path, database_url).test_client() for _ in range(2))
    h = {"Authorization": f"Bearer {_key('rl-shared')}"}
    codes = [c.get("/v1/datasets", headers=h).status_code for c in (one, two, one, two)]
    assert codes == [200, 200, 200, 429]


def test_retry_after_only_on_429_and_503(database_url: str, tmp_path: Path) -> None:
    client: Any = _app(tmp_path, database_url, rate_limit="100 per minute").test_client()
    h = {"Authorization": f"Bearer {_key('rl-ra')}"}
    answers = [client.get("/v1/datasets", headers=h), client.get("/v1/datasets/nope", headers=h),
               client.get("/v1/datasets"), client.get("/healthz"), client.get("/readyz"),
               client.post("/v1/datasets", headers=h, json={"name": 1}),
               client.get("/v1/jobs?limit=0", headers=h), client.get("/openapi.json")]
    assert [r.status_code for r in answers] == [200, 404, 401, 200, 200, 422, 422, 200]
    for r in answers:
        assert "Retry-After" not in r.headers, (r.status_code, r.request.path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own (the shared one is never stopped)."""
    port = _free_port()
    try:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                                 "--appendonly", "no", "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


def _store_errors() -> float:
    return REGISTRY.get_sample_value("ratelimit_store_errors_total") or 0.0


def test_store_down_fails_open_counts_and_is_named(database_url: str, tmp_path: Path,
                                                   private_redis: Any) -> None:
    url, proc = private_redis
    app = _app(tmp_path, database_url, redis_url=url)
    client: Any = app.test_client()
    h = {"Authorization": f"Bearer {_key('rl-down')}"}
    assert [client.get("/v1/datasets", headers=h).status_code for _ in range(4)] == \
        [200, 200, 200, 429]  # the limit really is in this Redis
    assert client.get("/readyz").get_json()["checks"]["rate_limit_store"] == "ok"
    proc.kill()
    proc.wait()
    before = _store_errors()
    assert [client.get("/v1/datasets", headers=h).status_code for _ in range(5)] == [200] * 5
    assert _store_errors() >= before + 5
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the API answers: not a reason to be taken out
    assert ready.get_json()["checks"]["rate_limit_store"].startswith("unreachable")


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for the rate limiter's store: the SQLite file under DATA_DIR, or real Redis."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


def test_a_busy_key_takes_blocks_and_two_processes_never_exceed_the_limit(
        database_url: str, tmp_path: Path, store: dict[str, Any]) -> None:
    """Two app instances on one store (as two gunicorn processes): bursts from each in turn.
    Blocks make the store calls far fewer than the requests; the two together are allowed
    the budget at most, and at least the budget less what one block per process can hold."""
    from service import ratelimit

    apps = [_app(tmp_path, database_url, rate_limit="600 per minute", **store)
            for _ in range(2)]
    calls = [0, 0]
    for i, app in enumerate(apps):
        storage = app.extensions["ratelimit"].storage
        real = storage.count

        def counting(*args: Any, _real: Any = real, _i: int = i) -> Any:
            calls[_i] += 1
            return _real(*args)

        storage.count = counting
    clients = [app.test_client() for app in apps]
    h = {"Authorization": f"Bearer {_key('rl-blocks')}"}
    allowed, limited = [0, 0], [False, False]
    while not all(limited):
        for i, client in enumerate(clients):
            for _ in range(25):
                resp = client.get("/v1/datasets", headers=h)
                if resp.status_code == 429:
                    limited[i] = True
                    break
                assert resp.status_code == 200
                assert 0 <= int(resp.headers["X-RateLimit-Remaining"]) < 600
                allowed[i] += 1
    assert 600 - 2 * ratelimit.LEASE_MAX <= sum(allowed) <= 600, allowed
    assert sum(calls) < sum(allowed) / 3, (calls, allowed)  # 1 per request without blocks


def test_a_block_lapses_with_its_window_only_and_a_slow_key_takes_one_hit_at_a_time() -> None:
    from service.ratelimit import RateLimiter

    class Store:
        """A counter whose window has ``left`` seconds to go."""

        def __init__(self) -> None:
            self.total, self.left, self.asked = 0, 60.0, []

        def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
            self.asked.append(amount)
            self.total += amount
            return self.total, self.left

        def check(self) -> bool:
            return True

    store, now = Store(), [100.0]
    limiter = RateLimiter("100000 per hour", store, "test")
    limiter.clock = lambda: now[0]
    for _ in range(63):  # back to back: blocks of 1, 2, 4, 8, 16, 32
        limiter.hit("k")
    assert store.asked == [1, 2, 4, 8, 16, 32]
    store.left = 0.01  # the window ends in 10 ms: the next block must not outlive it
    limiter.hit("k")
    assert store.asked[-1] == 32
    now[0] += 0.02
    limiter.hit("k")  # the block had 31 hits left, but its window is over
    assert len(store.asked) == 8 and store.asked[-1] == 1
    store.asked.clear()
    for _ in range(5):  # a key seen now and then: one hit per round trip
        now[0] += 1.0
        limiter.hit("slow")
    assert store.asked == [1] * 5
    store.left, store.asked = 60.0, []
    for _ in range(5):  # blocks of 1, 2 and 4 (of which 2 are left) ...
        limiter.hit("steady")
    assert store.asked == [1, 2, 4]
    now[0] += 5.0  # ... kept while their window lasts, however slowly they are used
    for _ in range(2):
        limiter.hit("steady")
    assert store.asked == [1, 2, 4]
    limiter.hit("steady")  # used up 5 s after it was taken: the next block is 1 hit
    assert store.asked == [1, 2, 4, 1]


def test_blocks_taken_at_once_by_two_threads_are_both_served() -> None:
    """Two threads find the block empty at once and each take one from the store: the hits of
    the one that lands first are kept with the other's, not thrown away."""
    import threading

    from service.ratelimit import RateLimiter, _Lease

    total = [0]
    both_asked = threading.Barrier(2)

    class Store:
        def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
            both_asked.wait(timeout=5)  # neither gets its answer before both have asked
            total[0] += amount
            return total[0], 60.0

        def check(self) -> bool:
            return True

    limiter = RateLimiter("100000 per hour", Store(), "test")
    limiter.clock = lambda: 100.0
    limiter._leases["k"] = _Lease(left=0, number=0, until=160.0, size=4, taken=100.0)
    # (a block of 4, just used up: the next is 8)
    threads = [threading.Thread(target=limiter.hit, args=("k",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert total[0] == 16  # two blocks of 8
    served = 2
    while limiter._leases["k"].left > 0:
        limiter.hit("k")
        served += 1
    assert served == 16 and total[0] == 16


def test_threads_that_find_the_block_empty_while_one_takes_the_next_share_it() -> None:
    """While one thread of the process waits for the store, the others that find the block
    empty wait for its block instead of each asking the store (a burst was a herd of store
    calls, and of new Redis connections)."""
    import threading
    import time

    from service.ratelimit import RateLimiter, _Lease

    calls, asked, answer = [], threading.Event(), threading.Event()

    class Store:
        def count(self, key: str, expiry: int, amount: int = 1) -> tuple[int, float]:
            calls.append(amount)
            asked.set()
            answer.wait(timeout=5)
            return sum(calls), 60.0

        def check(self) -> bool:
            return True

    limiter = RateLimiter("100000 per hour", Store(), "test")
    limiter.clock = lambda: 100.0
    limiter._leases["k"] = _Lease(left=0, number=0, until=160.0, size=4, taken=100.0)
    first = threading.Thread(target=limiter.hit, args=("k",))
    first.start()
    assert asked.wait(5)
    others = [threading.Thread(target=limiter.hit, args=("k",)) for _ in range(5)]
    for t in others:
        t.start()
    time.sleep(0.01)
    answer.set()
    for t in [first, *others]:
        t.join(5)
    assert calls == [8]  # one block of 8 for the six requests
    assert limiter._leases["k"].left == 2 and limiter._refills == {}
