"""``service.trust_cache.TrustCache``: the bound it keeps, and one lookup per key at a time.

The bound: a value is never served more than ``ttl`` after the lookup that confirmed it began.
Under load: a value past half its ttl is looked up again by one request while the others are
served it (or, given a ``refresh``, on the process's refresher thread while every request is
served it); a key missing or lapsed is looked up by one thread while the others wait for it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from service import trust_cache
from service.trust_cache import TrustCache

from .helpers import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Gate:
    """A lookup that, once called, waits for ``release`` (5 s at most) and then answers
    ``result`` (raises it, if it is an exception); ``entered`` is set when it is called and
    ``threads`` names the threads that called it."""

    def __init__(self, result: Any) -> None:
        self.result, self.threads = result, []
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self) -> Any:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.release.wait(5)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def primed(value: str = "v1", now: float = 0.6) -> tuple[Clock, TrustCache[str, str]]:
    """A cache holding ``value`` for ``"k"``, confirmed at 0, its clock moved on to ``now``."""
    clock = Clock()
    cache: TrustCache[str, str] = TrustCache(1.0, clock=clock)
    cache.get("k", lambda: value)
    clock.now = now
    return clock, cache


def counted(values: list[Any]) -> tuple[list[int], Any]:
    """A lookup answering ``values`` one after the other, and the count of its calls."""
    calls = [0]

    def lookup() -> Any:
        calls[0] += 1
        value = values[min(calls[0], len(values)) - 1]
        if isinstance(value, Exception):
            raise value
        return value

    return calls, lookup


def test_a_value_is_trusted_for_its_ttl_and_refreshed_after_half_of_it() -> None:
    clock = Clock()
    cache: TrustCache[str, str] = TrustCache(1.0, clock=clock)
    calls, lookup = counted(["v1", "v2", "v3"])
    assert cache.get("k", lookup) == "v1"
    clock.now = 0.49
    assert cache.get("k", lookup) == "v1" and calls == [1]
    clock.now = 0.5
    assert cache.get("k", lookup) == "v2" and calls == [2]  # confirmed again at 0.5
    clock.now = 1.49
    assert cache.get("k", lookup) == "v3" and calls == [3]
    clock.now = 3.0  # lapsed (nothing asked for it): looked up before it is served
    cache.get("k", lookup)
    assert calls == [4]


def test_not_there_is_dropped_and_never_kept() -> None:
    clock = Clock()
    cache: TrustCache[str, str] = TrustCache(1.0, clock=clock)
    calls, lookup = counted(["v1", None, None, "back"])
    assert cache.get("k", lookup) == "v1"
    clock.now = 0.6  # revoked meanwhile: the refresh sees it, and says so at once
    assert cache.get("k", lookup) is None and "k" not in cache
    assert cache.get("k", lookup) is None and calls == [3]  # asked each time
    assert cache.get("k", lookup) == "back"


def test_a_failed_refresh_serves_the_trusted_value_until_it_lapses() -> None:
    clock = Clock()
    cache: TrustCache[str, str] = TrustCache(1.0, clock=clock)
    down = ConnectionError("database down")
    calls, lookup = counted(["v1", down])
    cache.get("k", lookup)
    clock.now = 0.7
    assert cache.get("k", lookup) == "v1" and calls == [2]  # within its ttl still
    clock.now = 1.0  # lapsed: the request needs the answer, and gets the error
    with pytest.raises(ConnectionError):
        cache.get("k", lookup)
    with pytest.raises(ConnectionError):
        cache.get("k", lookup)


def test_threads_that_miss_at_once_share_one_lookup() -> None:
    cache: TrustCache[str, str] = TrustCache(1.0)
    release, calls = threading.Event(), []

    def slow() -> str:
        calls.append(1)
        release.wait(5)
        return "v"

    got: list[str | None] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", slow)))
               for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # all eight wait: one in the lookup, seven for it
    release.set()
    for t in threads:
        t.join(5)
    assert got == ["v"] * 8
    assert len(calls) == 1


def test_while_one_thread_refreshes_the_others_are_served_at_once() -> None:
    _, cache = primed("old", 0.8)
    slow = Gate("new")
    refresher = threading.Thread(target=cache.get, args=("k", slow))
    refresher.start()
    assert slow.entered.wait(5)
    others = [cache.get("k", lambda: pytest.fail("a second lookup")) for _ in range(5)]
    assert others == ["old"] * 5
    slow.release.set()
    refresher.join(5)
    assert cache.get("k", lambda: pytest.fail("confirmed at 0.8")) == "new"
    assert len(cache._flights) == 0  # the per-key locks are let go


def test_size_and_ttl_zero() -> None:
    cache: TrustCache[str, str] = TrustCache(1.0, size=2)
    for k in "abc":
        cache.get(k, lambda k=k: k.upper())
    assert cache.keys() == ["b", "c"]
    none: TrustCache[str, str] = TrustCache(0)
    calls, lookup = counted(["x"])
    none.get("k", lookup)
    none.get("k", lookup)
    assert calls == [2] and none.keys() == []


def test_with_a_refresh_no_request_waits_for_it() -> None:
    clock, cache = primed("old")
    refresh = Gate("new")
    never = lambda: pytest.fail("a request looked the key up")  # noqa: E731
    assert cache.get("k", never, refresh) == "old"  # served at once, refresh queued
    assert refresh.entered.wait(5)
    # while it runs, the others are served too, and no second refresh is queued
    assert [cache.get("k", never, refresh) for _ in range(5)] == ["old"] * 5
    refresh.release.set()
    assert wait_until(lambda: cache._items["k"][0] == "new" and not cache._queued)
    assert refresh.threads == ["trust-cache-refresh"]
    clock.now = 1.5  # confirmed at 0.6 (when the refresh began): still trusted
    assert cache.get("k", never, refresh) == "new"


def test_a_background_refresh_keeps_the_bound() -> None:
    clock, cache = primed()
    failing = Gate(OSError("database down"))
    try:
        assert cache.get("k", lambda: "unused", failing) == "v1"
        assert failing.entered.wait(5)
        clock.now = 1.0  # lapsed while the refresh is out: not served, the request waits for it
        calls, lookup, got = *counted(["v2"]), []
        request = threading.Thread(target=lambda: got.append(cache.get("k", lookup, failing)))
        request.start()
        assert wait_until(lambda: cache._flights._locks["k"][1] == 2)  # it is waiting
        assert not got
    finally:
        failing.release.set()
    request.join(5)  # the refresh failed: the request looked the key up itself
    assert got == ["v2"] and calls == [1]
    assert wait_until(lambda: not cache._queued)
    assert cache._items["k"] == ("v2", 1.0)


def test_a_request_waits_for_another_lookup_only_so_long(monkeypatch: pytest.MonkeyPatch,
                                                         ) -> None:
    monkeypatch.setattr(trust_cache, "WAIT_SECONDS", 0.05)
    cache: TrustCache[str, str] = TrustCache(1.0)
    stuck = Gate("late")
    first = threading.Thread(target=cache.get, args=("k", stuck))
    first.start()
    try:
        assert stuck.entered.wait(5)
        assert cache.get("k", lambda: "mine") == "mine"  # gave up waiting, asked itself
    finally:
        stuck.release.set()
    first.join(5)


def test_the_refresher_outlives_a_job_that_raises_anything() -> None:
    class Fatal(BaseException):
        pass

    def boom() -> None:
        raise Fatal

    trust_cache.REFRESHER.submit(boom)
    _, cache = primed()
    assert cache.get("k", lambda: "unused", lambda: "v2") == "v1"
    assert wait_until(lambda: cache._items["k"] == ("v2", 0.6))


def test_without_a_refresher_thread_the_request_refreshes(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    def no_thread(*_: Any, **__: Any) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(trust_cache.REFRESHER, "submit", no_thread)
    _, cache = primed()
    assert cache.get("k", lambda: "unused", lambda: "v2") == "v1"  # still trusted, and
    assert cache._items["k"] == ("v2", 0.6) and not cache._queued  # refreshed inline


def test_a_refresh_that_began_before_a_drop_does_not_bring_the_key_back() -> None:
    _, cache = primed()
    slow = Gate("v2")  # read before the delete committed
    try:
        assert cache.get("k", lambda: "unused", slow) == "v1"
        assert slow.entered.wait(5)
        cache.drop("k")  # deleted in this process meanwhile
    finally:
        slow.release.set()
    assert wait_until(lambda: not cache._queued)
    assert "k" not in cache


def test_a_queued_refresh_made_stale_is_skipped() -> None:
    clock = Clock()
    cache: TrustCache[str, str] = TrustCache(1.0, clock=clock)
    cache.get("k", lambda: "v1")
    blocker, release = threading.Event(), threading.Event()
    trust_cache.REFRESHER.submit(lambda: (blocker.set(), release.wait(5)))  # the thread is busy
    assert blocker.wait(5)
    clock.now = 0.6
    calls, refresh = counted(["v2"])
    try:
        assert cache.get("k", lambda: "unused", refresh) == "v1"  # queued behind the blocker
        cache.drop("k")
        assert cache.get("k", lambda: "v3") == "v3"  # looked up again by a request
    finally:
        release.set()
    assert wait_until(lambda: not cache._queued)
    assert calls == [0] and cache._items["k"] == ("v3", 0.6)


def test_a_forked_child_starts_its_own_refresher(monkeypatch: pytest.MonkeyPatch) -> None:
    trust_cache.REFRESHER.submit(lambda: None)
    parent = trust_cache.REFRESHER._thread
    clock = Clock()
    cache: TrustCache[str, str] = TrustCache(1.0, clock=clock)
    cache.get("k", lambda: "v1")
    cache._queued.add("k")  # a refresh the parent had queued: its job is not in the child
    monkeypatch.setattr(trust_cache.os, "getpid", lambda: -1)  # as in a forked child
    clock.now = 0.6
    assert cache.get("k", lambda: "unused", lambda: "v2") == "v1"
    assert wait_until(lambda: cache._items["k"] == ("v2", 0.6))
    assert trust_cache.REFRESHER._thread is not parent


def test_not_there_in_the_background_drops_the_key() -> None:
    _, cache = primed(now=0.7)
    assert cache.get("k", lambda: "unused", lambda: None) == "v1"
    assert wait_until(lambda: "k" not in cache and not cache._queued)
    calls, lookup = counted([None])
    assert cache.get("k", lookup, lambda: "unused") is None and calls == [1]
