"""Losses: values against the documented formulas, deltas against central differences (with
respect to the output, or to the pre-activation for the fused pairs), clipping, pairing rules."""

import numpy as np
import pytest

from backprop.activations import apply
from backprop.losses import LOSSES, check_pairing, loss


def outputs_and_targets(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pre-activations ``z`` (5, 3), outputs ``a = f(z)`` for the loss's natural output, targets."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(5, 3))
    if name == "cross_entropy":
        return z, apply("softmax", z), rng.dirichlet(np.ones(3), size=5)
    if name == "binary_cross_entropy":
        return z, apply("sigmoid", z), rng.uniform(size=(5, 3))
    return z, z.copy(), rng.normal(size=(5, 3))


def test_table_and_pairings() -> None:
    assert set(LOSSES) == {"mse", "binary_cross_entropy", "cross_entropy"}
    assert LOSSES["mse"].fused is None
    assert LOSSES["mse"].outputs == {"identity", "sigmoid", "tanh", "relu", "leaky_relu",
                                     "softmax"}
    assert LOSSES["binary_cross_entropy"].fused == "sigmoid"
    assert LOSSES["binary_cross_entropy"].outputs == {"sigmoid"}
    assert LOSSES["cross_entropy"].fused == "softmax"
    assert LOSSES["cross_entropy"].outputs == {"softmax"}


def test_mse_is_half_squared_error_averaged_over_samples() -> None:
    a = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([[0.0, 2.0], [1.0, 1.0]])
    # per sample: (1 + 0) and (4 + 16); halved and averaged over 2 samples
    assert loss("mse").value(a, y) == pytest.approx((1 + 0 + 4 + 16) / 4)


def test_cross_entropy_value() -> None:
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    expected = -(np.log(0.7) + np.log(0.8)) / 2
    assert loss("cross_entropy").value(a, y) == pytest.approx(expected, rel=1e-14)


def test_binary_cross_entropy_value() -> None:
    a = np.array([[0.9, 0.2], [0.4, 0.6]])
    y = np.array([[1.0, 0.0], [0.0, 0.5]])
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.6) + 0.5 * np.log(0.6)
                 + 0.5 * np.log(0.4)) / 2
    assert loss("binary_cross_entropy").value(a, y) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_value_and_delta_returns_the_same_value(name: str) -> None:
    _, a, y = outputs_and_targets(name)
    out = np.empty_like(a)
    assert LOSSES[name].value_and_delta(a, y, out) == pytest.approx(LOSSES[name].value(a, y),
                                                                    rel=1e-15)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_delta_is_difference_over_batch_size(name: str) -> None:
    _, a, y = outputs_and_targets(name)
    out = np.empty_like(a)
    LOSSES[name].value_and_delta(a, y, out)
    np.testing.assert_allclose(out, (a - y) / a.shape[0], rtol=1e-15)


def numeric_grad(f: object, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (f(up) - f(down)) / (2 * h)  # type: ignore[operator]
    return g


def test_mse_delta_is_gradient_with_respect_to_outputs() -> None:
    _, a, y = outputs_and_targets("mse", 3)
    entry = loss("mse")
    out = np.empty_like(a)
    entry.value_and_delta(a, y, out)
    np.testing.assert_allclose(out, numeric_grad(lambda t: entry.value(t, y), a),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("name", "act"), [("cross_entropy", "softmax"),
                                           ("binary_cross_entropy", "sigmoid")])
def test_fused_delta_is_gradient_with_respect_to_pre_activation(name: str, act: str) -> None:
    z, a, y = outputs_and_targets(name, 4)
    entry = loss(name)
    assert entry.fused == act
    out = np.empty_like(a)
    entry.value_and_delta(a, y, out)
    numeric = numeric_grad(lambda t: entry.value(apply(act, t), y), z)
    np.testing.assert_allclose(out, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["cross_entropy", "binary_cross_entropy"])
def test_log_losses_stay_finite_on_saturated_outputs(name: str, dtype: type) -> None:
    a = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    y = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)  # confidently wrong
    value = loss(name).value(a, y)
    assert np.isfinite(value)
    assert value > 10.0  # large, but finite
    right = loss(name).value(a, a)  # confidently right
    assert 0.0 <= right < 1e-5


@pytest.mark.parametrize("bad", ["nll", "MSE", None, 1])
def test_unknown_loss_lists_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown loss") as info:
        loss(bad)  # type: ignore[arg-type]
    for name in LOSSES:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_check_pairing_accepts_exactly_the_listed_outputs(name: str) -> None:
    for act in ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]:
        if act in LOSSES[name].outputs:
            check_pairing(name, act)
        else:
            with pytest.raises(ValueError, match="valid pairings"):
                check_pairing(name, act)


def test_pairing_error_lists_every_valid_pairing() -> None:
    with pytest.raises(ValueError) as info:
        check_pairing("cross_entropy", "sigmoid")
    msg = str(info.value)
    assert "'cross_entropy' cannot train a 'sigmoid' output layer" in msg
    assert "binary_cross_entropy with sigmoid" in msg
    assert "cross_entropy with softmax" in msg
    assert "mse with any" in msg
