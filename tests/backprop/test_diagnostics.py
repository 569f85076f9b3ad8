"""Per-layer diagnostics recorded while training, and the findings drawn from them: values
against an independent computation, the named findings on nets built to show them (and none on
a well-conditioned one), and training unchanged by recording them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backprop
from backprop import Network, Trainer, resolve_spec
from backprop.diagnostics import SAMPLE_ROWS
from backprop.trace import numeric_gradient

from .reference import reference


def blobs(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs in 4-D, standardised scale."""
    rng = np.random.default_rng(seed)
    centers = np.array([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]], dtype=float)
    y = rng.integers(0, 3, size=n)
    X = centers[y] + 0.5 * rng.standard_normal((n, 4))
    return X, y


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[y]


def names(model: backprop.Model) -> list[str]:
    return [w["name"] for w in model.warnings]


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "relu", "leaky_relu"])
def test_values_match_an_independent_computation(hidden: str) -> None:
    """One full-batch SGD step in float64: gradient norms against central differences on the
    sampled rows at the epoch-end weights, the update ratio against lr * |g0| / |W0| (g0 the
    full-batch gradient at the start), activation statistics from the reference formulas."""
    X, y = blobs(300)
    Y = one_hot(y, 3)
    lr = 0.1
    spec = resolve_spec({"network": {"layers": [{"units": 7, "activation": hidden},
                                                {"units": 5, "activation": hidden},
                                                {"units": 3}]},
                         "training": {"optimizer": {"name": "sgd", "learning_rate": lr},
                                      "batch_size": "full", "epochs": 1, "seed": 3,
                                      "dtype": "float64", "diagnostics": {"every": 1}}},
                        n_inputs=4, n_outputs=3, task="classification")
    net = Network(spec["network"], 4, "float64")
    net.initialize(np.random.default_rng(3))
    start = net.params.copy()
    step = numeric_gradient(net, X, Y, "cross_entropy")
    trainer = Trainer(net, spec["training"], classification=True)
    seen: list[Any] = []
    trainer.fit(X, Y, callback=lambda p: seen.append(p.diagnostics))
    numeric = numeric_gradient(net, X[:SAMPLE_ROWS], Y[:SAMPLE_ROWS], "cross_entropy")
    assert len(trainer.diagnostics) == 1 and trainer.diagnostics[0]["epoch"] == 1
    layers = trainer.diagnostics[0]["layers"]
    assert seen == [layers]  # the callback is offered the same rows

    a = X[:SAMPLE_ROWS]
    for i, ((ws, bs), row) in enumerate(zip(net.slices, layers, strict=True)):
        assert row["layer"] == i and row["activation"] == net.activations[i]
        g_w, g_b = numeric[ws], numeric[bs]
        assert row["grad_norm_W"] == pytest.approx(np.linalg.norm(g_w), rel=1e-6)
        assert row["grad_norm_b"] == pytest.approx(np.linalg.norm(g_b), rel=1e-6)
        assert row["weight_norm"] == pytest.approx(np.linalg.norm(net.params[ws]), rel=1e-12)
        assert row["update_ratio"] == pytest.approx(
            lr * np.linalg.norm(step[ws]) / np.linalg.norm(start[ws]), rel=1e-6)
        W = net.params[ws].reshape(net.shapes[i])
        z = a @ W + net.params[bs]
        a = reference(net.activations[i], z)
        assert row["activation_mean"] == pytest.approx(a.mean(), rel=1e-9, abs=1e-12)
        assert row["activation_std"] == pytest.approx(a.std(), rel=1e-9)
        act = net.activations[i]
        if act in ("relu", "leaky_relu"):
            assert row["dead_fraction"] == np.mean(np.all(z <= 0, axis=0))
        else:
            assert row["dead_fraction"] is None
        if act == "sigmoid":
            assert row["saturated_fraction"] == np.mean((a <= 0.01) | (a >= 0.99))
        elif act == "tanh":
            assert row["saturated_fraction"] == np.mean(np.abs(a) >= 0.98)
        else:
            assert row["saturated_fraction"] is None


def test_every_k_epochs_and_training_unchanged() -> None:
    X, y = blobs()
    base = {"network": {"layers": [{"units": 8, "activation": "relu"}, {"units": 3}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 25,
                         "batch_size": 16, "seed": 4, "validation_split": 0.2}}
    plain = backprop.train(base, X, y)
    spec = {**base, "training": {**base["training"], "diagnostics": {"every": 10}}}
    watched = backprop.train(spec, X, y)
    assert [d["epoch"] for d in watched.diagnostics] == [10, 20]
    assert plain.diagnostics == []
    assert watched.spec["training"]["diagnostics"] == {"every": 10}
    assert plain.spec["training"]["diagnostics"] is None
    # Recording diagnostics changes nothing about the training itself.
    assert np.array_equal(plain.network.params, watched.network.params)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in plain.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in watched.history]


def test_default_cadence_and_bad_values() -> None:
    spec = resolve_spec({"network": {"layers": [{"units": 1}]},
                         "training": {"diagnostics": {}}}, n_inputs=2)
    assert spec["training"]["diagnostics"] == {"every": 10}
    for bad, loc in [({"every": 0}, ("training", "diagnostics", "every")),
                     ({"every": 1.5}, ("training", "diagnostics", "every")),
                     ({"each": 3}, ("training", "diagnostics", "each")),
                     (True, ("training", "diagnostics"))]:
        with pytest.raises(backprop.SpecError) as err:
            resolve_spec({"network": {"layers": [{"units": 1}]},
                          "training": {"diagnostics": bad}}, n_inputs=2)
        assert err.value.loc == loc


# -- findings ----------------------------------------------------------------------------------


def test_deep_sigmoid_net_has_vanishing_gradients() -> None:
    X, y = blobs(200)
    spec = {"network": {"layers": [{"units": 16, "activation": "sigmoid"}] * 8 + [{"units": 3}]},
            "training": {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 6,
                         "seed": 1, "diagnostics": {"every": 2}}}
    model = backprop.train(spec, X, y)
    assert "vanishing_gradients" in names(model)
    found = next(w for w in model.warnings if w["name"] == "vanishing_gradients")
    ratios = sorted(d["layers"][0]["grad_norm_W"] / d["layers"][-1]["grad_norm_W"]
                    for d in model.diagnostics)
    assert found["value"] == pytest.approx(ratios[1]) and found["value"] < found["threshold"]
    assert found["threshold"] == 1e-3 and found["rule"] and found["message"]


def test_relu_with_huge_negative_bias_has_dead_units() -> None:
    X, y = blobs(200)
    spec = resolve_spec({"network": {"layers": [{"units": 16, "activation": "relu"},
                                                {"units": 3}]},
                         "training": {"optimizer": {"name": "sgd", "learning_rate": 0.05},
                                      "epochs": 3, "seed": 2, "diagnostics": {"every": 1}}},
                        n_inputs=4, n_outputs=3, task="classification")
    net = Network(spec["network"], 4)
    net.initialize(np.random.default_rng(2))
    net.biases[0][:12] = -100.0  # 12 of 16 units can never fire on these inputs
    trainer = Trainer(net, spec["training"], classification=True)
    history = trainer.fit(X, one_hot(y, 3))
    assert trainer.diagnostics[-1]["layers"][0]["dead_fraction"] == 12 / 16
    found = {w["name"]: w for w in backprop.findings(history, trainer.diagnostics)}
    assert set(found) >= {"dead_units"}
    assert found["dead_units"]["value"] == 0.75 and found["dead_units"]["layer"] == 0
    assert found["dead_units"]["threshold"] == 0.5


def test_saturated_tanh_layer_is_found() -> None:
    X, y = blobs(200)
    spec = {"network": {"layers": [{"units": 16, "activation": "tanh"}, {"units": 3}],
                        "init": "uniform", "init_scale": 20.0},
            "training": {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "epochs": 2,
                         "seed": 1, "diagnostics": {"every": 1}}}
    assert "saturation" in names(backprop.train(spec, X, y))


def test_well_conditioned_net_gets_no_findings() -> None:
    X, y = blobs(300)
    spec = {"network": {"layers": [{"units": 16, "activation": "tanh"},
                                   {"units": 16, "activation": "relu"}, {"units": 3}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 30,
                         "l2": 0.01, "seed": 5, "validation_split": 0.2,
                         "diagnostics": {"every": 1}}}
    model = backprop.train(spec, X, y)
    assert len(model.diagnostics) == 30
    assert model.warnings == []
    # Without l2 the same net overfits these separable blobs (the validation loss, tiny, keeps
    # rising as the net grows confident), and says so.
    spec["training"]["l2"] = 0.0
    assert names(backprop.train(spec, X, y)) == ["overfitting"]


def test_history_findings() -> None:
    def rows(losses: list[float], val: list[float] | None = None) -> list[dict[str, Any]]:
        return [{"epoch": i + 1, "loss": v, "val_loss": None if val is None else val[i]}
                for i, v in enumerate(losses)]

    flat = rows([1.0 - 0.01 * i for i in range(10)] + [0.91] * 20)
    (found,) = backprop.findings(flat)
    assert found["name"] == "loss_not_decreasing" and found["value"] == 0.0
    assert backprop.findings(rows([1.0 / (i + 1) for i in range(40)])) == []
    assert backprop.findings(rows([1e-9] * 40)) == []  # converged, not stuck
    train_loss = [1.0 / (i + 1) for i in range(30)]
    val_loss = [1.0 - 0.05 * i for i in range(10)] + [0.55 + 0.05 * i for i in range(20)]
    (found,) = backprop.findings(rows(train_loss, val_loss))
    assert found["name"] == "overfitting" and found["epoch"] == 10
    assert found["value"] == pytest.approx((np.mean(val_loss[-5:]) - 0.55) / 0.55)


def test_exploding_gradients_rule() -> None:
    layers = [{"layer": 0, "grad_norm_W": 5e3}, {"layer": 1, "grad_norm_W": 10.0}]
    (found,) = [f for f in backprop.findings([], [{"epoch": 3, "layers": layers}])
                if f["name"] == "exploding_gradients"]
    assert found["value"] == 5e3 and found["epoch"] == 3
