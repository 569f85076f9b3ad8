"""Backpropagation against central differences (``backprop.gradient_check``, float64) for every
allowed hidden activation x output activation x loss, 1-3 hidden layers of odd sizes, with and
without L2, on both training kernels; and proof that the check notices a wrong derivative."""

import numpy as np
import pytest

from backprop import LOSSES, Network, gradient_check
from backprop.activations import ACTIVATIONS, Activation, apply

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]
SIZES = [3, 5, 7]
N_INPUTS, N_OUTPUTS, N_ROWS = 6, 4, 5
TOLERANCE = 1e-6
# Central differences with a step of 1e-5: truncation error ~1e-10, round-off ~1e-11 relative;
# the default 1e-6 leaves round-off within a factor 2 of the tolerance on deep sigmoid stacks.
EPS = 1e-5
KINK_MARGIN = 1e-3  # >> EPS * |x|: no perturbation can carry a pre-activation across 0

CASES = [
    (loss, out, hidden, depth, l2)
    for loss in sorted(LOSSES)
    for out in sorted(LOSSES[loss].outputs)
    for hidden in HIDDEN
    for depth in (1, 2, 3)
    for l2 in (0.0, 0.03)
]


def pre_activations(net: Network, X: np.ndarray) -> list[np.ndarray]:
    out, a = [], X
    for w, b, act in zip(net.weights, net.biases, net.activations, strict=True):
        z = a @ w + b
        out.append(z)
        a = apply(act, z)
    return out


def targets(loss: str, rng: np.random.Generator) -> np.ndarray:
    if loss == "cross_entropy":
        return rng.dirichlet(np.ones(N_OUTPUTS), size=N_ROWS)  # rows are distributions
    if loss == "binary_cross_entropy":
        return rng.uniform(size=(N_ROWS, N_OUTPUTS))
    return rng.normal(size=(N_ROWS, N_OUTPUTS))


def make_case(hidden: str, out: str, depth: int) -> tuple[Network, np.ndarray,
                                                          np.random.Generator]:
    """A float64 net with random weights *and* biases, and inputs whose pre-activations all
    stay ``KINK_MARGIN`` away from 0 (the first seed, in a fixed order, that gives that)."""
    layers = [{"units": u, "activation": hidden} for u in SIZES[:depth]]
    layers.append({"units": N_OUTPUTS, "activation": out})
    for seed in range(100):
        rng = np.random.default_rng(seed)
        net = Network({"layers": layers}, N_INPUTS, "float64")
        net.initialize(rng)
        net.params[net.n_weights:] = rng.normal(0.0, 0.5, net.n_params - net.n_weights)
        X = rng.normal(size=(N_ROWS, N_INPUTS))
        if min(np.abs(z).min() for z in pre_activations(net, X)) > KINK_MARGIN:
            return net, X, rng
    raise AssertionError("no seed keeps the pre-activations away from the kink")


@pytest.mark.parametrize(("loss", "out", "hidden", "depth", "l2"), CASES)
def test_backprop_matches_central_differences(loss: str, out: str, hidden: str, depth: int,
                                              l2: float, kernel: str) -> None:
    net, X, rng = make_case(hidden, out, depth)
    Y = targets(loss, rng)
    errors = gradient_check(net, X, Y, loss, l2, eps=EPS, kernel=kernel)
    assert list(errors) == [f"layer{i}" for i in range(depth + 1)]
    net.loss_and_grad(X, Y, LOSSES[loss], l2)
    for gw, gb in zip(net.weight_grads, net.bias_grads, strict=True):
        assert np.abs(gw).max() > 1e-6 and np.abs(gb).max() > 1e-6  # no layer is trivially 0
    assert max(errors.values()) < TOLERANCE, errors


def test_every_allowed_pairing_is_covered() -> None:
    pairs = {(loss, out) for loss, out, *_ in CASES}
    assert pairs == {(name, out) for name, entry in LOSSES.items() for out in entry.outputs}
    assert ("mse", "softmax") in pairs and ("cross_entropy", "sigmoid") not in pairs
    assert len(CASES) == (6 + 1 + 1) * len(HIDDEN) * 3 * 2


def test_mixed_hidden_activations(kernel: str) -> None:
    layers = [{"units": 7, "activation": "leaky_relu"}, {"units": 5, "activation": "sigmoid"},
              {"units": 3, "activation": "relu"}, {"units": 4, "activation": "softmax"}]
    rng = np.random.default_rng(11)
    net = Network({"layers": layers}, 6, "float64")
    net.initialize(rng)
    net.params[net.n_weights:] = rng.normal(0.0, 0.5, net.n_params - net.n_weights)
    X = rng.normal(size=(9, 6))
    assert min(np.abs(z).min() for z in pre_activations(net, X)) > KINK_MARGIN
    Y = rng.dirichlet(np.ones(4), size=9)
    errors = gradient_check(net, X, Y, "cross_entropy", 0.01, eps=EPS, kernel=kernel)
    assert max(errors.values()) < TOLERANCE, errors


def test_float32_network_is_checked_in_float64_and_left_untouched() -> None:
    net = Network({"layers": [{"units": 5, "activation": "tanh"}, {"units": 2}]}, 3)
    net.initialize(np.random.default_rng(0))
    before = net.params.copy()
    rng = np.random.default_rng(1)
    errors = gradient_check(net, rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), "mse",
                            eps=EPS)
    assert max(errors.values()) < TOLERANCE
    assert net.params.dtype == np.float32
    np.testing.assert_array_equal(net.params, before)


def test_sampled_check_is_reproducible() -> None:
    net, X, rng = make_case("tanh", "identity", 3)
    Y = targets("mse", rng)
    a = gradient_check(net, X, Y, "mse", max_checks_per_layer=4,
                       rng=np.random.default_rng(5), eps=EPS)
    b = gradient_check(net, X, Y, "mse", max_checks_per_layer=4,
                       rng=np.random.default_rng(5), eps=EPS)
    assert a == b
    assert max(a.values()) < TOLERANCE


def test_check_notices_a_wrong_activation_derivative(monkeypatch: pytest.MonkeyPatch) -> None:
    forward, backward = ACTIVATIONS["tanh"]

    def off_by_a_little(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
        backward(a, delta, tmp)
        delta *= 1.01  # a 1% error in f'

    monkeypatch.setitem(ACTIVATIONS, "tanh", Activation(forward, off_by_a_little))
    net, X, rng = make_case("tanh", "identity", 2)
    errors = gradient_check(net, X, targets("mse", rng), "mse", eps=EPS)
    assert errors["layer2"] < TOLERANCE  # the output layer does not use tanh'
    assert errors["layer0"] > 1e-3 and errors["layer1"] > 1e-3


def test_check_notices_a_wrong_loss_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = LOSSES["cross_entropy"]

    def unscaled(a: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
        value = entry.value_and_delta(a, y, out)
        out *= a.shape[0]  # forgot to average over the batch
        return value

    monkeypatch.setitem(LOSSES, "cross_entropy", entry._replace(value_and_delta=unscaled))
    net, X, rng = make_case("sigmoid", "softmax", 1)
    errors = gradient_check(net, X, targets("cross_entropy", rng), "cross_entropy", eps=EPS)
    assert min(errors.values()) > 0.5
