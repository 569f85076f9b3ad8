"""A callback that takes groups of epochs (``callback_seconds``): the compiled kernel runs
several epochs per call and calls back after each group, with the same arithmetic, rows and
state as one epoch at a time, and a state at the group's end that checkpoints and stops."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop
from backprop import DivergenceError

from .test_kernels import data, needs_numba, trained

ADAM = {"name": "adam", "learning_rate": 0.01}
ARGS = ("tanh", "softmax", "cross_entropy", "classification", ADAM, 5, "float32")


def rows_of(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


class Seen:
    """A callback that keeps what it was given."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[int, list[int]]] = []
        self.stop_at = stop_at
        self.checkpoints: dict[int, bytes] = {}

    def __call__(self, p: backprop.Progress) -> bool:
        assert p.rows and p.record is p.rows[-1] and p.rows[-1]["epoch"] == p.epoch
        assert p.trainer.epoch == p.epoch  # the state is the group's last epoch's
        self.calls.append((p.epoch, [r["epoch"] for r in p.rows]))
        self.checkpoints[p.epoch] = p.checkpoint()
        return self.stop_at is not None and p.epoch >= self.stop_at


@needs_numba
@pytest.mark.parametrize("seconds", [1e-9, 1e-3, 60.0])
def test_groups_of_epochs_equal_one_epoch_at_a_time(seconds: float) -> None:
    one = trained("compiled", *ARGS, epochs=40, callback=lambda p: False)
    seen = Seen()
    grouped = trained("compiled", *ARGS, epochs=40, callback=seen, callback_seconds=seconds)
    np.testing.assert_array_equal(grouped.network.params, one.network.params)
    assert rows_of(grouped.history) == rows_of(one.history)
    assert grouped.rng.bit_generator.state == one.rng.bit_generator.state
    delivered = [e for _, epochs in seen.calls for e in epochs]
    assert delivered == list(range(1, 41))  # every epoch's row once, in order
    assert seen.calls[0] == (1, [1])  # the first group is one epoch: it times the next
    if seconds == 60.0:
        assert len(seen.calls) == 2  # then the rest in one call
    if seconds == 1e-9:
        assert len(seen.calls) == 40


@needs_numba
def test_a_group_stops_and_checkpoints_at_its_last_epoch() -> None:
    whole = trained("compiled", *ARGS, epochs=40)
    seen = Seen(stop_at=3)
    part = trained("compiled", *ARGS, epochs=40, callback=seen, callback_seconds=1e-9)
    assert part.stop_reason == "callback" and len(part.history) == 3 == part.epoch
    rest = trained("compiled", *ARGS, epochs=40, fit=False)
    rest.restore(seen.checkpoints[3])
    X, Y = data("classification", "softmax")
    rest.fit(X, Y, callback=Seen(), callback_seconds=1e-3)
    np.testing.assert_array_equal(rest.network.params, whole.network.params)
    assert rows_of(part.history + rest.history) == rows_of(whole.history)


@needs_numba
def test_divergence_in_a_group_hands_over_the_rows_before_it() -> None:
    sgd = {"name": "sgd", "learning_rate": 5.0, "momentum": 0.9}
    args = ("relu", "identity", "mse", "regression", sgd, 4, "float32")
    errors, delivered = [], []
    for seconds in (None, 60.0):
        seen: list[int] = []

        def keep(p: backprop.Progress, seen: list[int] = seen) -> bool:
            seen.extend(r["epoch"] for r in p.rows)
            return False

        with pytest.raises(DivergenceError) as info:
            trained("compiled", *args, epochs=50, callback=keep, callback_seconds=seconds)
        errors.append(info.value)
        delivered.append(seen)
    assert errors[0].epoch == errors[1].epoch > 2 and str(errors[0]) == str(errors[1])
    assert delivered[0] == delivered[1] == list(range(1, errors[0].epoch))


def test_per_epoch_progress_lists_its_one_row() -> None:
    seen: list[list[int]] = []
    spec = {"network": {"layers": [{"units": 3}, {"units": 1}]},
            "training": {"epochs": 3, "batch_size": 2, "kernel": "numpy", "seed": 0}}
    backprop.train(spec, [[0, 0], [0, 1], [1, 0], [1, 1]], [[0], [1], [1], [0]],
                   callback=lambda p: seen.append([r["epoch"] for r in p.rows]),
                   callback_every=1, callback_seconds=1.0)
    assert seen == [[], [1], [], [2], [], [3]]  # between batches: none
