"""Optimisers: hand-computed steps with the textbook formulas, validation, and config/state
round trips that reproduce the next step exactly."""

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from backprop import kernels
from backprop.optimizers import (
    OPTIMIZERS,
    SGD,
    Adagrad,
    Adam,
    Optimizer,
    RMSprop,
    Rprop,
    optimizer_from_config,
)

P0 = np.array([0.5, -1.0, 2.0, 0.0])
G1 = np.array([0.2, -0.4, 1.0, -3.0])
G2 = np.array([0.1, 0.3, -2.0, -1.0])


Step = Callable[[Optimizer, np.ndarray, np.ndarray], None]


@pytest.fixture
def step(kernel: str) -> Step:
    """One optimiser step as the kernel under test does it (``opt.step`` or compiled)."""
    return kernels.step_function(kernel)


def run(opt: Optimizer, *grads: np.ndarray, step: Step | None = None) -> list[np.ndarray]:
    """Params after each step, starting from ``P0`` (float64, updated in place)."""
    step = step or (lambda o, p, g: o.step(p, g))
    p = P0.copy()
    out = []
    for g in grads:
        step(opt, p, g.copy())
        out.append(p.copy())
    return out


def test_sgd_plain_step(step: Step) -> None:
    (p1,) = run(SGD(learning_rate=0.1), G1, step=step)
    np.testing.assert_allclose(p1, [0.5 - 0.02, -1.0 + 0.04, 2.0 - 0.1, 0.3], rtol=1e-15)


def test_sgd_momentum_two_steps(step: Step) -> None:
    lr, mu = 0.1, 0.9
    p1, p2 = run(SGD(learning_rate=lr, momentum=mu), G1, G2, step=step)
    v1 = -lr * G1
    v2 = mu * v1 - lr * G2
    np.testing.assert_allclose(p1, P0 + v1, rtol=1e-15)
    np.testing.assert_allclose(p2, P0 + v1 + v2, rtol=1e-14)


def test_sgd_nesterov_two_steps(step: Step) -> None:
    # Sutskever et al. form: v <- mu v - lr g ; p <- p + mu v - lr g
    lr, mu = 0.1, 0.9
    p1, p2 = run(SGD(learning_rate=lr, momentum=mu, nesterov=True), G1, G2, step=step)
    v1 = -lr * G1
    e1 = P0 + mu * v1 - lr * G1
    v2 = mu * v1 - lr * G2
    e2 = e1 + mu * v2 - lr * G2
    np.testing.assert_allclose(p1, e1, rtol=1e-14)
    np.testing.assert_allclose(p2, e2, rtol=1e-14)
    classic = run(SGD(learning_rate=lr, momentum=mu), G1, G2, step=step)
    assert not np.allclose(p2, classic[1])  # the look-ahead really differs


def test_adagrad_two_steps(step: Step) -> None:
    lr, eps = 0.5, 1e-7
    p1, p2 = run(Adagrad(learning_rate=lr, epsilon=eps), G1, G2, step=step)
    acc1 = G1**2
    e1 = P0 - lr * G1 / (np.sqrt(acc1) + eps)
    acc2 = acc1 + G2**2
    e2 = e1 - lr * G2 / (np.sqrt(acc2) + eps)
    np.testing.assert_allclose(p1, e1, rtol=1e-14)
    np.testing.assert_allclose(p2, e2, rtol=1e-14)


def test_rmsprop_two_steps(step: Step) -> None:
    lr, rho, eps = 0.01, 0.8, 1e-7
    p1, p2 = run(RMSprop(learning_rate=lr, rho=rho, epsilon=eps), G1, G2, step=step)
    s1 = (1 - rho) * G1**2
    e1 = P0 - lr * G1 / (np.sqrt(s1) + eps)
    s2 = rho * s1 + (1 - rho) * G2**2
    e2 = e1 - lr * G2 / (np.sqrt(s2) + eps)
    np.testing.assert_allclose(p1, e1, rtol=1e-14)
    np.testing.assert_allclose(p2, e2, rtol=1e-14)


def test_adam_two_steps_with_bias_correction(step: Step) -> None:
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-3  # a large eps so its placement matters
    p1, p2 = run(Adam(learning_rate=lr, beta1=b1, beta2=b2, epsilon=eps), G1, G2, step=step)
    m, v, p = np.zeros(4), np.zeros(4), P0.copy()
    expected = []
    for t, g in enumerate([G1, G2], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append(p)
    np.testing.assert_allclose(p1, expected[0], rtol=1e-13)
    np.testing.assert_allclose(p2, expected[1], rtol=1e-13)
    # With bias correction the first step moves each weight by about lr (not (1 - b1) lr).
    np.testing.assert_allclose(np.abs(p1 - P0)[G1 != 0], lr, rtol=0.01)


def test_rprop_sign_flip_shrinks_step_and_skips_that_weight(step: Step) -> None:
    lr, up, down = 0.1, 1.2, 0.5
    opt = Rprop(learning_rate=lr, eta_plus=up, eta_minus=down)
    g1 = np.array([1.0, -2.0, 3.0, 0.5])
    g2 = np.array([4.0, 1.0, -0.1, 0.0])  # same sign, flip, flip, zero
    g3 = np.array([2.0, 5.0, -1.0, 1.0])
    p = P0.copy()
    # first step: every weight moves by the initial step against its gradient's sign
    step(opt, p, g1.copy())
    p1 = p.copy()
    np.testing.assert_allclose(p1, P0 - lr * np.sign(g1), rtol=1e-15)
    np.testing.assert_array_equal(opt.steps, lr)
    # second step: weight 0 kept its sign -> step grows and it moves;
    # weights 1 and 2 flipped -> step shrinks and they do not move; weight 3 has no gradient
    step(opt, p, g2.copy())
    p2 = p.copy()
    np.testing.assert_allclose(opt.steps, [lr * up, lr * down, lr * down, lr], rtol=1e-15)
    np.testing.assert_allclose(p2, p1 - np.array([lr * up, 0.0, 0.0, 0.0]), rtol=1e-15)
    np.testing.assert_array_equal(opt.prev_grads, [4.0, 0.0, 0.0, 0.0])
    # third step: after a flip the stored gradient is zero, so the step is neither grown nor
    # shrunk, and the weight moves again by its (shrunk) step
    step(opt, p, g3.copy())
    steps3 = np.array([lr * up * up, lr * down, lr * down, lr])
    np.testing.assert_allclose(opt.steps, steps3, rtol=1e-15)
    np.testing.assert_allclose(p, p2 - steps3 * np.sign(g3), rtol=1e-15)


def test_rprop_steps_are_clipped(step: Step) -> None:
    opt = Rprop(learning_rate=1.0, eta_plus=10.0, eta_minus=0.01, step_min=0.05, step_max=5.0)
    g = np.array([1.0, 1.0, 1.0, 1.0])
    run(opt, g, g, g, step=step)
    np.testing.assert_array_equal(opt.steps, 5.0)
    opt2 = Rprop(learning_rate=1.0, eta_plus=10.0, eta_minus=0.01, step_min=0.05, step_max=5.0)
    run(opt2, g, -g, step=step)
    np.testing.assert_array_equal(opt2.steps, 0.05)


def test_rprop_is_full_batch_only() -> None:
    assert Rprop.full_batch_only
    assert not any(cls.full_batch_only for name, cls in OPTIMIZERS.items() if name != "rprop")


def test_step_works_in_place_on_float32(step: Step) -> None:
    p = P0.astype(np.float32)
    view = p
    step(Adam(learning_rate=0.1), p, G1.astype(np.float32))
    assert view is p and p.dtype == np.float32
    assert not np.array_equal(p, P0.astype(np.float32))


CONFIGS: list[dict[str, Any]] = [
    {"name": "sgd", "learning_rate": 0.05},
    {"name": "sgd", "learning_rate": 0.05, "momentum": 0.8},
    {"name": "sgd", "learning_rate": 0.05, "momentum": 0.8, "nesterov": True},
    {"name": "adagrad", "learning_rate": 0.3, "epsilon": 1e-6},
    {"name": "rmsprop", "learning_rate": 0.02, "rho": 0.7, "epsilon": 1e-6},
    {"name": "adam", "learning_rate": 0.02, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
    {"name": "rprop", "learning_rate": 0.2, "eta_plus": 1.3, "eta_minus": 0.4,
     "step_min": 1e-4, "step_max": 2.0},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_config_round_trip(config: dict[str, Any]) -> None:
    opt = optimizer_from_config(config)
    exported = opt.get_config()
    assert {k: exported[k] for k in config} == config
    assert optimizer_from_config(exported).get_config() == exported


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_state_round_trip_gives_the_identical_next_step(config: dict[str, Any],
                                                        step: Step) -> None:
    rng = np.random.default_rng(7)
    grads = [rng.normal(size=4) for _ in range(4)]
    a = optimizer_from_config(config)
    p = P0.copy()
    for g in grads[:3]:
        step(a, p, g)
    b = optimizer_from_config(a.get_config())
    # through copies, as a checkpoint would: nothing may be shared with ``a``
    b.set_state({k: (v.copy() if isinstance(v, np.ndarray) else v)
                 for k, v in a.get_state().items()})
    pa, pb = p.copy(), p.copy()
    step(a, pa, grads[3])
    step(b, pb, grads[3])
    np.testing.assert_array_equal(pa, pb)
    # and a fresh optimiser without the state does something else (unless it has none)
    fresh = optimizer_from_config(config)
    pc = p.copy()
    step(fresh, pc, grads[3])
    assert np.array_equal(pc, pa) == (config == {"name": "sgd", "learning_rate": 0.05})


def test_state_is_empty_before_the_first_step() -> None:
    for name in OPTIMIZERS:
        opt = optimizer_from_config({"name": name})
        assert opt.get_state() == {}
        opt.set_state({})  # restoring an empty state is a no-op


def test_default_name_is_sgd() -> None:
    assert isinstance(optimizer_from_config({}), SGD)


@pytest.mark.parametrize(("config", "field"), [
    ({"name": "sgd", "learning_rate": -0.1}, "learning_rate"),
    ({"name": "sgd", "learning_rate": 0.0}, "learning_rate"),
    ({"name": "adam", "learning_rate": math.inf}, "learning_rate"),
    ({"name": "sgd", "learning_rate": math.nan}, "learning_rate"),
    ({"name": "sgd", "momentum": 1.0}, "momentum"),
    ({"name": "sgd", "momentum": -0.1}, "momentum"),
    ({"name": "sgd", "nesterov": True}, "nesterov"),
    ({"name": "sgd", "momentum": 0.5, "nesterov": 1}, "nesterov"),
    ({"name": "adam", "beta1": 1.0}, "beta1"),
    ({"name": "adam", "beta2": -0.5}, "beta2"),
    ({"name": "adam", "epsilon": 0.0}, "epsilon"),
    ({"name": "rmsprop", "rho": 1.5}, "rho"),
    ({"name": "adagrad", "epsilon": -1.0}, "epsilon"),
    ({"name": "rprop", "eta_plus": 1.0}, "eta_plus"),
    ({"name": "rprop", "eta_minus": 1.0}, "eta_minus"),
    ({"name": "rprop", "step_min": 1.0, "step_max": 0.5}, "step_max"),
    # numbers only: no booleans or numeric strings slipping through float()
    ({"name": "sgd", "learning_rate": True}, "learning_rate"),
    ({"name": "sgd", "learning_rate": "0.1"}, "learning_rate"),
    ({"name": "sgd", "momentum": False}, "momentum"),
    ({"name": "adam", "beta1": [0.9]}, "beta1"),
])
def test_bad_hyper_parameters_raise_value_error_naming_the_field(config: dict[str, Any],
                                                                 field: str) -> None:
    with pytest.raises(ValueError) as info:
        optimizer_from_config(config)
    assert str(info.value).startswith(field)


@pytest.mark.parametrize("bad", ["momentum", "SGD", None, 3])
def test_unknown_optimizer_lists_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown optimizer") as info:
        optimizer_from_config({"name": bad})
    for name in OPTIMIZERS:
        assert repr(name) in str(info.value)
