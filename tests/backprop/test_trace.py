"""The traced step: every gradient equals the engine's own backward pass and central
differences; z, a and delta follow the formulas written out independently."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop
from backprop import Network, resolve_spec
from backprop.losses import loss as get_loss

from .reference import reference

PAIRS = [("identity", "mse"), ("sigmoid", "mse"), ("sigmoid", "binary_cross_entropy"),
         ("softmax", "cross_entropy"), ("softmax", "mse"), ("tanh", "mse")]
HIDDEN = ["sigmoid", "tanh", "relu", "leaky_relu", "identity"]


def network(hidden: str, output: str, seed: int = 0) -> Network:
    units = 1 if output == "identity" or (output == "sigmoid") else 3
    spec = resolve_spec({"network": {"layers": [{"units": 5, "activation": hidden},
                                                {"units": 4, "activation": hidden},
                                                {"units": units, "activation": output}]}},
                        n_inputs=3)
    net = Network(spec["network"], 3, "float64")
    net.initialize(np.random.default_rng(seed))
    net.biases[0][...] = np.linspace(-0.3, 0.3, 5)  # non-zero biases, so grad_b means something
    return net


def targets(net: Network, rows: int, output: str, rng: np.random.Generator) -> np.ndarray:
    if output == "softmax":
        return np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, rows)]
    if output == "sigmoid":
        return rng.integers(0, 2, (rows, 1)).astype(float)
    return rng.standard_normal((rows, net.n_outputs))


@pytest.mark.parametrize(("hidden", "pair"), list(itertools.product(HIDDEN, PAIRS)))
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_trace_equals_backward_and_central_differences(hidden: str, pair: tuple[str, str],
                                                       l2: float) -> None:
    output, loss = pair
    rng = np.random.default_rng(1)
    net = network(hidden, output)
    X = rng.standard_normal((4, 3))
    Y = targets(net, 4, output, rng)
    result = backprop.trace(net, X, Y, loss, l2=l2, check=True)

    engine = net.copy(np.float64)
    value, _ = engine.loss_and_grad(X, Y, get_loss(loss), l2)
    assert result["loss"] == pytest.approx(value, rel=1e-12)
    assert result["rows"] == 4 and result["l2"] == l2
    for layer, gw, gb in zip(result["layers"], engine.weight_grads, engine.bias_grads,
                             strict=True):
        np.testing.assert_allclose(layer["grad_W"], gw, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(layer["grad_b"], gb, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(layer["numeric_grad_W"], gw, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(layer["numeric_grad_b"], gb, rtol=1e-5, atol=1e-8)
        assert layer["relative_error_W"] < 1e-6 and layer["relative_error_b"] < 1e-6
    assert result["check"]["max_relative_error"] < 1e-6
    assert result["check"]["eps"] == 1e-6


def test_forward_and_delta_recursion_by_hand() -> None:
    """z and a from the reference formulas; the output delta of sigmoid + MSE is
    (a - y) a (1 - a) / m; each hidden delta is f'(z) * (delta_next @ W_next.T)."""
    rng = np.random.default_rng(2)
    net = network("sigmoid", "sigmoid")
    X = rng.standard_normal((2, 3))
    Y = np.array([[1.0], [0.0]])
    result = backprop.trace(net, X, Y, "mse")
    a = X
    for layer, w, b in zip(result["layers"], net.weights, net.biases, strict=True):
        z = a @ w + b
        np.testing.assert_allclose(layer["z"], z, rtol=1e-12)
        a = reference(layer["activation"], z)
        np.testing.assert_allclose(layer["a"], a, rtol=1e-12)
        np.testing.assert_array_equal(layer["W"], w)
        np.testing.assert_array_equal(layer["b"], b)
    layers = result["layers"]
    out = layers[-1]["a"]
    np.testing.assert_allclose(layers[-1]["delta"], (out - Y) * out * (1 - out) / 2, rtol=1e-12)
    for lower, upper in itertools.pairwise(layers):
        a = lower["a"]
        expect = a * (1 - a) * (upper["delta"] @ upper["W"].T)
        np.testing.assert_allclose(lower["delta"], expect, rtol=1e-12)
        np.testing.assert_allclose(upper["grad_W"], lower["a"].T @ upper["delta"], rtol=1e-12)
    assert result["loss"] == pytest.approx(0.5 * np.sum((out - Y) ** 2) / 2, rel=1e-12)
    assert "check" not in result and "numeric_grad_W" not in layers[0]


def test_trace_uses_float64_whatever_the_network_dtype() -> None:
    net = network("tanh", "identity").copy(np.float32)
    X = np.random.default_rng(3).standard_normal((3, 3))
    result = backprop.trace(net, X, np.zeros((3, 1)), "mse", check=True)
    assert result["layers"][0]["z"].dtype == np.float64
    assert result["check"]["max_relative_error"] < 1e-6
    assert net.dtype == np.float32  # the network itself is untouched


@pytest.mark.parametrize(("X", "Y", "match"), [
    (np.zeros((2, 4)), np.zeros((2, 1)), r"inputs must have shape \(n_samples, 3\)"),
    (np.zeros((0, 3)), np.zeros((0, 1)), "inputs must have shape"),
    (np.zeros((2, 3)), np.zeros((2, 2)), r"targets must have shape \(2, 1\)"),
])
def test_bad_shapes(X: np.ndarray, Y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        backprop.trace(network("tanh", "identity"), X, Y, "mse")
