"""Learning-rate schedules: values per epoch, reduce-on-plateau, validation, state round trip."""

from typing import Any

import pytest

from backprop.schedules import SCHEDULES, Plateau, schedule_from_config


def rates(config: dict[str, Any], base: float, epochs: int) -> list[float]:
    sched = schedule_from_config(base, config)
    return [sched.rate(e) for e in range(epochs)]


def test_constant() -> None:
    assert rates({"name": "constant"}, 0.3, 4) == [0.3] * 4
    assert rates({}, 0.3, 2) == [0.3] * 2  # the default


def test_step() -> None:
    got = rates({"name": "step", "step_size": 3, "gamma": 0.1}, 2.0, 8)
    expected = [2.0, 2.0, 2.0, 0.2, 0.2, 0.2, 0.02, 0.02]
    assert got == pytest.approx(expected, rel=1e-15)


def test_exponential() -> None:
    got = rates({"name": "exponential", "gamma": 0.9}, 0.5, 5)
    assert got == pytest.approx([0.5, 0.45, 0.405, 0.3645, 0.32805], rel=1e-14)


def test_inverse() -> None:
    got = rates({"name": "inverse", "power": 0.5}, 1.0, 4)
    assert got == pytest.approx([1.0, 1 / 2**0.5, 1 / 3**0.5, 0.5], rel=1e-15)
    got = rates({"name": "inverse", "power": 1.0}, 0.6, 3)
    assert got == pytest.approx([0.6, 0.3, 0.2], rel=1e-15)


def test_defaults_are_used_when_parameters_are_omitted() -> None:
    assert rates({"name": "step"}, 1.0, 21)[::10] == [1.0, 0.5, 0.25]
    assert rates({"name": "exponential"}, 1.0, 2) == [1.0, 0.95]
    assert rates({"name": "inverse"}, 1.0, 4)[3] == 0.5


def test_observe_does_not_change_the_stateless_schedules() -> None:
    for name in ("constant", "step", "exponential", "inverse"):
        sched = schedule_from_config(1.0, {"name": name})
        before = [sched.rate(e) for e in range(5)]
        for metric in (3.0, 3.0, 3.0, 9.0):
            sched.observe(metric)
        assert [sched.rate(e) for e in range(5)] == before


def test_plateau_reduces_after_patience_epochs_without_improvement() -> None:
    sched = Plateau(0.1, factor=0.5, patience=3, min_delta=0.01)
    seen = []
    for metric in [1.0, 0.9, 0.895, 0.894, 0.899, 0.5, 0.6, 0.6, 0.6, 0.6]:
        sched.observe(metric)
        seen.append(sched.rate(0))
    # 0.895, 0.894, 0.899 do not beat 0.9 by min_delta -> the third of them halves the rate;
    # 0.5 improves; then three more misses halve it again.
    assert seen == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert sched.best == 0.5


def test_plateau_never_goes_below_min_lr() -> None:
    sched = Plateau(1.0, factor=0.1, patience=1, min_lr=0.05)
    for _ in range(5):
        sched.observe(1.0)
    assert sched.rate(99) == 0.05


def test_plateau_rate_ignores_the_epoch_number() -> None:
    sched = Plateau(0.2, patience=2)
    assert sched.rate(0) == sched.rate(1000) == 0.2


def test_plateau_state_round_trip() -> None:
    config = {"name": "plateau", "factor": 0.5, "patience": 2, "min_delta": 0.0, "min_lr": 0.0}
    a = schedule_from_config(0.4, config)
    for metric in [1.0, 0.8, 0.9, 0.85, 0.81]:
        a.observe(metric)
    b = schedule_from_config(0.4, a.get_config())
    b.set_state(a.get_state())
    assert b.get_state() == a.get_state()
    assert a.get_state() == {"current": 0.2, "best": 0.8, "wait": 1}
    for metric in [0.9, 0.95, 0.7, 0.75, 0.76]:
        a.observe(metric)
        b.observe(metric)
        assert a.rate(0) == b.rate(0)
    assert b.rate(0) == 0.05  # the restored schedule really continued, it did not restart
    fresh = schedule_from_config(0.4, config)
    fresh.observe(0.9)
    fresh.observe(0.95)
    assert fresh.rate(0) == 0.4


@pytest.mark.parametrize("config", [
    {"name": "constant"},
    {"name": "step", "step_size": 4, "gamma": 0.3},
    {"name": "exponential", "gamma": 0.7},
    {"name": "inverse", "power": 2.0},
    {"name": "plateau", "factor": 0.2, "patience": 5, "min_delta": 0.1, "min_lr": 1e-3},
])
def test_config_round_trip(config: dict[str, Any]) -> None:
    sched = schedule_from_config(0.1, config)
    assert sched.get_config() == config
    again = schedule_from_config(0.1, sched.get_config())
    assert [again.rate(e) for e in range(12)] == [sched.rate(e) for e in range(12)]


@pytest.mark.parametrize(("config", "field"), [
    ({"name": "step", "step_size": 0}, "step_size"),
    ({"name": "step", "step_size": 2.5}, "step_size"),
    ({"name": "step", "step_size": True}, "step_size"),
    ({"name": "step", "gamma": -1.0}, "gamma"),
    ({"name": "step", "gamma": True}, "gamma"),
    ({"name": "step", "gamma": "0.5"}, "gamma"),
    ({"name": "exponential", "gamma": float("inf")}, "gamma"),
    ({"name": "inverse", "power": 0.0}, "power"),
    ({"name": "plateau", "factor": 1.0}, "factor"),
    ({"name": "plateau", "factor": "x"}, "factor"),
    ({"name": "plateau", "patience": 0}, "patience"),
    ({"name": "plateau", "min_delta": -1.0}, "min_delta"),
    ({"name": "plateau", "min_delta": "0"}, "min_delta"),
    ({"name": "plateau", "min_lr": float("nan")}, "min_lr"),
])
def test_bad_parameters_raise_value_error_naming_the_field(config: dict[str, Any],
                                                           field: str) -> None:
    with pytest.raises(ValueError) as info:
        schedule_from_config(0.1, config)
    assert str(info.value).startswith(field)


def test_unknown_schedule_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown lr_schedule") as info:
        schedule_from_config(0.1, {"name": "cosine"})
    for name in SCHEDULES:
        assert repr(name) in str(info.value)
