"""The recorder's ETA on a fake clock: the rate is measured from the first callback, so the
first epoch's start-up (buffers, fresh memory, a compile) does not count against the rest. And
its queue: an epoch's diagnostics are queued before its history row, so the writer never commits
the row without them (event streams send both from the row's poll)."""

from __future__ import annotations

from typing import Any

import pytest

import backprop
from service.config import Settings
from workers.claim import Claim
from workers.recorder import Diagnostics, Recorder


def recorder(epochs: int = 100) -> Recorder:
    spec = {"training": {"epochs": epochs}}
    return Recorder(Claim("job_1", 1, spec, "ds_1", None, 0, "t_1"), Settings())


def group(first: int, last: int, seconds: float, epochs: int = 100) -> backprop.Progress:
    rows = [{"epoch": e, "seconds": seconds / (last - first + 1)} for e in
            range(first, last + 1)]
    return backprop.Progress(last, epochs, None, 1, rows[-1], None, None, rows)  # type: ignore[arg-type]


def test_eta_is_measured_after_the_first_epoch() -> None:
    r = recorder()
    r.advance(1.0, 10.0, seconds=1.0, epochs=1)  # a slow first epoch (warm-up): 1 s
    assert r.eta(10.0) == pytest.approx(99.0)  # only that epoch to go by, for now
    r.advance(11.0, 11.0, seconds=1.0, epochs=10)  # then 0.1 s an epoch
    assert r.eta(11.0) == pytest.approx(89 * 0.1)  # not 89 * 2/11 s with the warm-up in it
    r.advance(21.0, 12.0, seconds=1.0, epochs=10)
    assert r.eta(12.5) == pytest.approx(79 * 0.1 - 0.5)  # less the time since that epoch
    assert r.eta(30.0) == 0.0


def test_eta_between_batches_waits_for_a_second_call() -> None:
    r = recorder(epochs=3)
    r.advance(0.25, 5.0)  # a quarter of the first epoch, no row: nothing to time yet
    assert r.eta(5.0) is None
    r.advance(0.5, 6.0)
    assert r.eta(6.0) == pytest.approx(2.5 * 4.0)


def test_a_group_of_epochs_queues_every_row_and_times_the_group() -> None:
    r = recorder()
    assert r(group(1, 1, 0.5)) is False
    assert r(group(2, 41, 2.0)) is False
    rows: list[Any] = list(r.items)
    assert [row["epoch"] for row in rows] == list(range(1, 42))
    (at0, when0), (at, when) = r.origin, r.position  # type: ignore[misc]
    assert (at0, at) == (1.0, 41.0) and when > when0


def test_diagnostics_are_queued_before_their_row() -> None:
    claim = Claim("job_x", 1, {"training": {"epochs": 3}}, "ds_x", None, 0, "t_1")
    rec = Recorder(claim, Settings(checkpoint_every_seconds=1e9))
    layers = [{"layer": 0, "activation": "tanh"}]
    row: dict[str, Any] = {"epoch": 1, "seconds": 0.01}
    plain: dict[str, Any] = {"epoch": 2, "seconds": 0.01}
    rec(backprop.Progress(1, 3, None, 1, row, None, layers, [row]))  # type: ignore[arg-type]
    rec(backprop.Progress(2, 3, None, 1, plain, None, None, [plain]))  # type: ignore[arg-type]
    items = list(rec.items)
    assert isinstance(items[0], Diagnostics) and items[0].epoch == 1
    assert items[0].layers == layers
    assert items[1:] == [row, plain]
