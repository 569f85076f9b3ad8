"""The network: parameter layout, dtypes, initialisers, and loss/gradients against a plain NumPy
reference written independently (unfused chain rule, explicit softmax Jacobian, no in-place
updates), which catches a bug that ``loss()`` and ``loss_and_grad()`` would share."""

from typing import Any

import numpy as np
import pytest

from backprop import INITIALIZERS, Network
from backprop.initializers import default_for, initializer
from backprop.losses import loss as get_loss

from .reference import reference

# -- an independent reference ----------------------------------------------------------------


def ref_act_vjp(name: str, z: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/dz from dL/da, with derivatives written in terms of z."""
    if name == "identity":
        return g
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return g * s * (1.0 - s)
    if name == "tanh":
        return g * (1.0 - np.tanh(z) ** 2)
    if name == "relu":
        return g * (z > 0)
    if name == "leaky_relu":
        return g * np.where(z > 0, 1.0, 0.01)
    if name == "softmax":
        a = reference("softmax", z)
        rows = [(np.diag(a_i) - np.outer(a_i, a_i)) @ g_i for a_i, g_i in zip(a, g, strict=True)]
        return np.array(rows)
    raise AssertionError(name)


def ref_loss_and_grads(Ws: list[np.ndarray], bs: list[np.ndarray], acts: list[str],
                       X: np.ndarray, Y: np.ndarray, loss: str, l2: float,
                       ) -> tuple[float, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    n = X.shape[0]
    inputs, zs = [], []
    a = X
    for W, b, act in zip(Ws, bs, acts, strict=True):
        inputs.append(a)
        z = a @ W + b
        zs.append(z)
        a = reference(act, z)
    if loss == "mse":
        value = np.sum((a - Y) ** 2) / (2 * n)
        g = (a - Y) / n
    elif loss == "cross_entropy":
        value = -np.sum(Y * np.log(a)) / n
        g = -(Y / a) / n
    elif loss == "binary_cross_entropy":
        value = -np.sum(Y * np.log(a) + (1 - Y) * np.log(1 - a)) / n
        g = (-(Y / a) + (1 - Y) / (1 - a)) / n
    else:
        raise AssertionError(loss)
    value = value + 0.5 * l2 * sum(np.sum(W * W) for W in Ws)
    gWs, gbs = [], []
    for i in reversed(range(len(Ws))):
        dz = ref_act_vjp(acts[i], zs[i], g)
        gWs.insert(0, inputs[i].T @ dz + l2 * Ws[i])
        gbs.insert(0, dz.sum(axis=0))
        g = dz @ Ws[i].T
    return float(value), a, gWs, gbs


REFERENCE_CASES = [
    ([("tanh", 4), ("sigmoid", 5), ("softmax", 3)], "cross_entropy", 0.05),
    ([("relu", 6), ("leaky_relu", 3), ("identity", 2)], "mse", 0.0),
    ([("leaky_relu", 5), ("sigmoid", 3)], "binary_cross_entropy", 0.1),
    ([("sigmoid", 3), ("softmax", 4)], "mse", 0.02),
    ([("identity", 2), ("tanh", 3), ("relu", 2)], "mse", 0.0),
]


@pytest.mark.parametrize(("layers", "loss", "l2"), REFERENCE_CASES)
def test_loss_and_grad_match_an_independent_reference(layers: list[tuple[str, int]], loss: str,
                                                      l2: float) -> None:
    rng = np.random.default_rng(42)
    n_in, n = 4, 7
    net = Network({"layers": [{"units": u, "activation": a} for a, u in layers]}, n_in,
                  "float64")
    net.params[...] = rng.normal(0.0, 0.8, net.n_params)  # biases too
    X = rng.normal(size=(n, n_in))
    units = layers[-1][1]
    if loss == "cross_entropy":
        Y = np.eye(units)[rng.integers(0, units, n)]
    elif loss == "binary_cross_entropy":
        Y = rng.integers(0, 2, (n, units)).astype(float)
    else:
        Y = rng.normal(size=(n, units))
    Ws = [w.copy() for w in net.weights]
    bs = [b.copy() for b in net.biases]
    value, out, gWs, gbs = ref_loss_and_grads(Ws, bs, [a for a, _ in layers], X, Y, loss, l2)

    got_value, got_out = net.loss_and_grad(X, Y, get_loss(loss), l2)
    assert got_value == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(got_out, out, rtol=1e-12, atol=1e-15)
    for i, (gw, gb) in enumerate(zip(gWs, gbs, strict=True)):
        np.testing.assert_allclose(net.weight_grads[i], gw, rtol=1e-10, atol=1e-13,
                                   err_msg=f"weights of layer {i}")
        np.testing.assert_allclose(net.bias_grads[i], gb, rtol=1e-10, atol=1e-13,
                                   err_msg=f"biases of layer {i}")
    # the flat gradient has the documented layout: all weights, then all biases
    flat = np.concatenate([g.ravel() for g in gWs] + gbs)
    np.testing.assert_allclose(net.grads, flat, rtol=1e-10, atol=1e-13)
    assert net.loss(X, Y, loss, l2) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(net.forward(X), out, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(net.params, np.concatenate(
        [w.ravel() for w in Ws] + bs))  # nothing modified the parameters


def test_buffers_reused_across_batch_sizes_give_fresh_results() -> None:
    rng = np.random.default_rng(3)
    spec = {"layers": [{"units": 5, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]}
    net = Network(spec, 4, "float64")
    net.initialize(rng)
    batches = [(rng.normal(size=(m, 4)), np.eye(3)[rng.integers(0, 3, m)]) for m in (6, 2, 6)]
    ce = get_loss("cross_entropy")
    for X, Y in batches * 2:
        value, _ = net.loss_and_grad(X, Y, ce, 0.01)
        fresh = net.copy()
        expected, _ = fresh.loss_and_grad(X, Y, ce, 0.01)
        assert value == expected
        np.testing.assert_array_equal(net.grads, fresh.grads)


def test_l2_applies_to_weights_only() -> None:
    rng = np.random.default_rng(4)
    net = Network({"layers": [{"units": 3}, {"units": 2}]}, 2, "float64")
    net.params[...] = rng.normal(size=net.n_params)
    X, Y = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    mse = get_loss("mse")
    v0, _ = net.loss_and_grad(X, Y, mse, 0.0)
    g0 = net.grads.copy()
    v1, _ = net.loss_and_grad(X, Y, mse, 0.5)
    w = net.params[:net.n_weights]
    assert v1 == pytest.approx(v0 + 0.25 * np.sum(w * w), rel=1e-13)
    np.testing.assert_allclose(net.grads[:net.n_weights], g0[:net.n_weights] + 0.5 * w,
                               rtol=1e-13)
    np.testing.assert_array_equal(net.grads[net.n_weights:], g0[net.n_weights:])


# -- structure and dtypes --------------------------------------------------------------------


def small_spec(**extra: Any) -> dict[str, Any]:
    return {"layers": [{"units": 3, "activation": "relu"}, {"units": 2}], **extra}


def test_parameter_layout_and_views() -> None:
    net = Network(small_spec(), 4)
    assert net.shapes == [(4, 3), (3, 2)]
    assert net.n_weights == 4 * 3 + 3 * 2
    assert net.n_params == net.n_weights + 3 + 2
    net.params[...] = np.arange(net.n_params)
    np.testing.assert_array_equal(net.weights[0], np.arange(12).reshape(4, 3))
    np.testing.assert_array_equal(net.weights[1], np.arange(12, 18).reshape(3, 2))
    np.testing.assert_array_equal(net.biases[0], [18, 19, 20])
    np.testing.assert_array_equal(net.biases[1], [21, 22])
    net.weights[1][0, 0] = -1.0  # the layers are views into the flat array
    assert net.params[12] == -1.0
    assert net.weight_grads[0].base is not None and np.shares_memory(net.weight_grads[0],
                                                                     net.grads)
    assert net.n_outputs == 2 and net.layer_names() == ["layer0", "layer1"]
    assert repr(net) == "Network(4-3-2, relu/identity, float32)"


def test_float32_by_default() -> None:
    net = Network(small_spec(), 4)
    assert net.dtype == np.float32
    assert net.params.dtype == np.float32 and net.grads.dtype == np.float32
    assert net.forward(np.ones((2, 4))).dtype == np.float32  # float64 inputs are cast


def test_float64_on_request() -> None:
    net = Network(small_spec(), 4, "float64")
    assert net.params.dtype == np.float64
    assert net.forward(np.ones((2, 4), dtype=np.float32)).dtype == np.float64
    assert net.copy("float32").params.dtype == np.float32


@pytest.mark.parametrize("dtype", ["float16", "int32", np.complex128])
def test_other_dtypes_are_rejected(dtype: Any) -> None:
    with pytest.raises(ValueError, match="float32 or float64"):
        Network(small_spec(), 4, dtype)


def test_input_width_comes_from_the_argument_or_the_spec() -> None:
    assert Network(small_spec(inputs=6)).n_inputs == 6
    with pytest.raises(ValueError, match="input width"):
        Network(small_spec())


@pytest.mark.parametrize("shape", [(3, 5), (4,), (2, 4, 1)])
def test_forward_rejects_wrong_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
        Network(small_spec(), 4).forward(np.zeros(shape))


def test_forward_does_not_modify_its_input() -> None:
    net = Network(small_spec(), 4, "float64")
    net.initialize(np.random.default_rng(0))
    X = np.random.default_rng(1).normal(size=(3, 4))
    before = X.copy()
    net.forward(X)
    np.testing.assert_array_equal(X, before)


def test_copy_is_independent() -> None:
    net = Network(small_spec(), 4)
    net.initialize(np.random.default_rng(0))
    other = net.copy()
    np.testing.assert_array_equal(other.params, net.params)
    other.params[0] += 1.0
    assert other.params[0] != net.params[0]


# -- initialisation --------------------------------------------------------------------------


def test_parameters_start_at_zero_until_initialised() -> None:
    net = Network(small_spec(), 4)
    assert not net.params.any()
    net.initialize(np.random.default_rng(0))
    assert np.all(net.params[:net.n_weights] != 0.0)
    assert not net.params[net.n_weights:].any()  # biases start at zero


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_no_two_units_in_a_layer_start_equal(init: str) -> None:
    layers = [{"units": 8, "activation": "tanh"}, {"units": 8, "activation": "relu"},
              {"units": 3}]
    net = Network({"layers": layers, "init": init}, 5)
    net.initialize(np.random.default_rng(0))
    for w in net.weights:
        units = w.T  # one row per unit: its incoming weights
        assert len(np.unique(units, axis=0)) == units.shape[0]


def test_same_seed_same_weights_different_seed_different_weights() -> None:
    def params(seed: int) -> np.ndarray:
        net = Network(small_spec(), 4)
        net.initialize(np.random.default_rng(seed))
        return net.params

    np.testing.assert_array_equal(params(1), params(1))
    assert not np.array_equal(params(1), params(2))


FAN_IN, FAN_OUT = 400, 600


@pytest.mark.parametrize(("name", "variance"), [
    ("xavier", 2.0 / (FAN_IN + FAN_OUT)),
    ("xavier_uniform", 2.0 / (FAN_IN + FAN_OUT)),
    ("xavier_normal", 2.0 / (FAN_IN + FAN_OUT)),
    ("he", 2.0 / FAN_IN),
    ("he_normal", 2.0 / FAN_IN),
    ("he_uniform", 2.0 / FAN_IN),
    ("uniform", 0.3**2 / 3.0),
])
def test_initialiser_variance_on_a_big_layer(name: str, variance: float) -> None:
    w = initializer(name)(np.random.default_rng(0), FAN_IN, FAN_OUT, 0.3)
    assert w.shape == (FAN_IN, FAN_OUT)
    assert abs(w.mean()) < 0.01 * np.sqrt(variance)
    assert w.var() == pytest.approx(variance, rel=0.02)


@pytest.mark.parametrize(("name", "bound"), [
    ("xavier_uniform", np.sqrt(6.0 / (FAN_IN + FAN_OUT))),
    ("he_uniform", np.sqrt(6.0 / FAN_IN)),
    ("uniform", 0.3),
])
def test_uniform_initialisers_stay_within_their_bound(name: str, bound: float) -> None:
    w = initializer(name)(np.random.default_rng(0), FAN_IN, FAN_OUT, 0.3)
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound


def test_default_initialiser_follows_the_activation() -> None:
    assert default_for("relu") == default_for("leaky_relu") == "he"
    for act in ("identity", "sigmoid", "tanh", "softmax"):
        assert default_for(act) == "xavier"
    layers = [{"units": 300, "activation": "relu"}, {"units": 300, "activation": "tanh"},
              {"units": 300, "activation": "leaky_relu"}, {"units": 2}]
    net = Network({"layers": layers}, 300)
    net.initialize(np.random.default_rng(0))
    assert [layer["init"] for layer in net.spec["layers"]] == ["he", "xavier", "he", "xavier"]
    assert net.weights[0].var() == pytest.approx(2.0 / 300, rel=0.03)  # He
    assert net.weights[1].var() == pytest.approx(2.0 / 600, rel=0.03)  # Xavier
    assert net.weights[2].var() == pytest.approx(2.0 / 300, rel=0.03)


def test_init_scale_sets_the_uniform_range() -> None:
    net = Network({"layers": [{"units": 50}, {"units": 2}], "init": "uniform",
                   "init_scale": 0.05}, 40)
    net.initialize(np.random.default_rng(0))
    w = net.params[:net.n_weights]
    assert np.abs(w).max() <= 0.05 and np.abs(w).max() > 0.049


def test_unknown_initialiser_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown initializer") as info:
        initializer("orthogonal")
    for name in INITIALIZERS:
        assert repr(name) in str(info.value)
