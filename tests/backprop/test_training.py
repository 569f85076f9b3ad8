"""The training loop: convergence (XOR, digits), reproducibility, bit-for-bit resume from a
checkpoint, divergence, stopping rules and callbacks. The maths ones run on both kernels."""

import itertools
from typing import Any

import numpy as np
import pytest

import backprop
from backprop import DivergenceError, Network, Progress, Trainer, resolve_spec

# -- convergence -----------------------------------------------------------------------------

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def test_xor_converges_with_online_momentum_sgd(kernel: str) -> None:
    spec = {
        "network": {"layers": [{"units": 2, "activation": "sigmoid"},
                               {"units": 1, "activation": "sigmoid"}]},
        "training": {"loss": "mse", "optimizer": {"name": "sgd", "learning_rate": 0.5,
                                                  "momentum": 0.9},
                     "batch_size": 1, "standardize": False, "epochs": 1000, "seed": 0,
                     "kernel": kernel},
    }
    model = backprop.train(spec, XOR_X, XOR_Y)
    assert model.spec["training"]["kernel"] == kernel
    assert model.task == "regression" and model.standardizer is None
    assert model.network.units == [2, 1]
    out = model.predict(XOR_X)
    assert np.abs(out - XOR_Y).max() < 0.1, out
    assert model.history[-1]["loss"] < 0.01 < model.history[0]["loss"]
    assert model.stop_reason == "epochs" and len(model.history) == 1000


def test_digits_reach_96_percent_on_held_out_rows(kernel: str) -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    spec = {
        "network": {"layers": [{"units": 64, "activation": "relu"}, {"units": 10}]},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": 20,
                     "batch_size": 32, "standardize": True, "seed": 0, "kernel": kernel},
    }
    model = backprop.train(spec, X_train, y_train)
    assert model.task == "classification" and model.classes == list(range(10))
    assert model.spec["network"]["layers"][-1]["activation"] == "softmax"
    assert model.spec["training"]["loss"] == "cross_entropy"
    accuracy = np.mean(np.array(model.predict_labels(X_test)) == y_test)
    assert accuracy >= 0.96
    assert model.history[-1]["accuracy"] >= accuracy - 0.05  # training accuracy is tracked


# -- reproducibility and resume --------------------------------------------------------------


def blobs(n: int = 90, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    labels = np.array(["a", "b", "c"])[(X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)]
    targets = np.c_[np.sin(X[:, 0]), X[:, 1] * X[:, 2]]
    return X, labels, targets


def without_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all(isinstance(row["seconds"], float) and row["seconds"] >= 0 for row in history)
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


RESUME_CONFIGS: dict[str, tuple[dict[str, Any], bool]] = {
    "sgd-momentum-shuffle-minibatch-validation-es-plateau": ({
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        "batch_size": 16, "shuffle": True, "validation_split": 0.2,
        "early_stopping": {"patience": 100},
        "lr_schedule": {"name": "plateau", "patience": 2, "factor": 0.5}}, True),
    "adam-l2-regression": ({"optimizer": {"name": "adam", "learning_rate": 0.01},
                            "batch_size": 7, "l2": 1e-3}, False),
    "rprop-full-batch": ({"optimizer": {"name": "rprop"}, "batch_size": "full"}, True),
    "nesterov-step-schedule-float64": ({
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.5, "nesterov": True},
        "lr_schedule": {"name": "step", "step_size": 4}, "batch_size": 20,
        "dtype": "float64"}, True),
    # best epoch before the checkpoint, early stop after it: the counters must survive
    "adam-early-stop-after-checkpoint": ({
        "optimizer": {"name": "adam", "learning_rate": 0.2}, "batch_size": 10,
        "validation_split": 0.3, "early_stopping": {"patience": 3, "min_delta": 1e-3}}, False),
}


def resume_spec(name: str, classification: bool, kernel: str = "numpy") -> dict[str, Any]:
    training = {**RESUME_CONFIGS[name][0], "epochs": 20, "seed": 3, "kernel": kernel}
    return {"network": {"layers": [{"units": 5, "activation": "tanh"},
                                   {"units": 3 if classification else 2}]},
            "training": training}


@pytest.mark.parametrize("name", sorted(RESUME_CONFIGS))
def test_same_seed_gives_bit_identical_runs(name: str, kernel: str) -> None:
    classification = RESUME_CONFIGS[name][1]
    X, labels, targets = blobs()
    y = labels if classification else targets
    spec = resume_spec(name, classification, kernel)
    a = backprop.train(spec, X, y)
    b = backprop.train(spec, X, y)
    np.testing.assert_array_equal(a.network.params, b.network.params)
    assert without_seconds(a.history) == without_seconds(b.history)
    assert a.metrics == b.metrics and a.spec == b.spec
    spec["training"]["seed"] = 4
    c = backprop.train(spec, X, y)
    assert not np.array_equal(a.network.params, c.network.params)


@pytest.mark.parametrize("name", sorted(RESUME_CONFIGS))
def test_resume_from_a_checkpoint_is_bit_for_bit(name: str, kernel: str) -> None:
    classification = RESUME_CONFIGS[name][1]
    X, labels, targets = blobs()
    y = labels if classification else targets
    spec = resume_spec(name, classification, kernel)
    whole = backprop.train(spec, X, y)
    if name == "adam-early-stop-after-checkpoint":
        assert whole.stop_reason == "early_stopping"
        assert whole.metrics["epoch"] < 10 < len(whole.history) < 20
    else:
        assert whole.stop_reason == "epochs" and len(whole.history) == 20

    saved: dict[str, bytes] = {}

    def stop_at_ten(progress: Progress) -> bool:
        if progress.epoch == 10:
            saved["checkpoint"] = progress.checkpoint()
            return True
        return False

    first = backprop.train(spec, X, y, callback=stop_at_ten)
    assert first.stop_reason == "callback" and len(first.history) == 10
    if name == "adam-early-stop-after-checkpoint":  # a stop from outside keeps the best epoch's
        assert first.metrics == whole.metrics  # weights: here the best of the whole run too
    else:
        assert not np.array_equal(first.network.params, whole.network.params)

    resumed = backprop.train(spec, X, y, resume=saved["checkpoint"])
    np.testing.assert_array_equal(resumed.network.params, whole.network.params)
    # The checkpoint holds no history: the resumed run returns the epochs after it.
    assert resumed.history[0]["epoch"] == 11
    assert without_seconds(first.history + resumed.history) == without_seconds(whole.history)
    assert resumed.metrics == whole.metrics
    assert resumed.stop_reason == whole.stop_reason


@pytest.mark.parametrize("name", sorted(RESUME_CONFIGS))
def test_resume_from_every_epoch_is_bit_for_bit(name: str) -> None:
    """Including the epoch at which early stopping decided to stop: resuming there trains no
    further and ends with the best weights and metrics of the uninterrupted run."""
    classification = RESUME_CONFIGS[name][1]
    X, labels, targets = blobs()
    y = labels if classification else targets
    spec = resume_spec(name, classification)
    whole = backprop.train(spec, X, y)
    saved: dict[int, bytes] = {}

    def keep(progress: Progress) -> None:
        saved[progress.epoch] = progress.checkpoint()

    backprop.train(spec, X, y, callback=keep)
    assert sorted(saved) == list(range(1, len(whole.history) + 1))
    for epoch, checkpoint in saved.items():
        resumed = backprop.train(spec, X, y, resume=checkpoint)
        np.testing.assert_array_equal(resumed.network.params, whole.network.params)
        assert without_seconds(resumed.history) == without_seconds(whole.history[epoch:])
        assert (resumed.metrics, resumed.stop_reason) == (whole.metrics, whole.stop_reason)


def test_a_checkpoint_does_not_grow_with_the_epochs() -> None:
    X, labels, _ = blobs()
    spec = resume_spec("sgd-momentum-shuffle-minibatch-validation-es-plateau", True)
    spec["training"].update(epochs=400, early_stopping={"patience": 1000})
    sizes: dict[int, int] = {}

    def size(progress: Progress) -> None:
        if progress.epoch in (1, 10, 400):
            sizes[progress.epoch] = len(progress.checkpoint())

    backprop.train(spec, X, labels, callback=size)
    # the same arrays; only the digits of a few numbers in its JSON header differ
    assert max(sizes.values()) < 1.05 * min(sizes.values()), sizes


def test_the_resume_configurations_exercise_their_features() -> None:
    X, labels, _ = blobs()
    name = "sgd-momentum-shuffle-minibatch-validation-es-plateau"
    model = backprop.train(resume_spec(name, True), X, labels)
    rates = [row["learning_rate"] for row in model.history]
    assert rates[0] == 0.05 and rates[-1] < 0.05  # the plateau schedule reduced the rate
    assert all(row["val_loss"] is not None for row in model.history)
    model = backprop.train(resume_spec("nesterov-step-schedule-float64", True), X, labels)
    assert model.network.dtype == np.float64
    assert [row["learning_rate"] for row in model.history][::4] == pytest.approx(
        [0.1 * 0.5**k for k in range(5)])


def test_resume_rejects_a_checkpoint_from_another_spec() -> None:
    X, labels, _ = blobs()
    spec = resume_spec("rprop-full-batch", True)
    saved: dict[str, bytes] = {}

    def grab(progress: Progress) -> bool:
        saved["c"] = progress.checkpoint()
        return True

    backprop.train(spec, X, labels, callback=grab)
    other = resume_spec("rprop-full-batch", True)
    other["training"]["epochs"] = 30
    with pytest.raises(ValueError, match="different training spec"):
        backprop.train(other, X, labels, resume=saved["c"])
    wider = resume_spec("rprop-full-batch", True)
    wider["network"]["layers"][0]["units"] = 6
    with pytest.raises(ValueError, match="different network"):
        backprop.train(wider, X, labels, resume=saved["c"])
    with pytest.raises(ValueError, match="not a training checkpoint"):
        backprop.train(spec, X, labels, resume=backprop.train(spec, X, labels).to_bytes())


# -- the Trainer directly --------------------------------------------------------------------


def make_trainer(training: dict[str, Any], layers: list[dict[str, Any]] | None = None,
                 n_inputs: int = 3, n_outputs: int = 2, dtype: str = "float32",
                 task: str = "regression") -> Trainer:
    spec = resolve_spec({"network": {"layers": layers or [{"units": 5, "activation": "tanh"},
                                                          {"units": n_outputs}]},
                         "training": {"seed": 0, "dtype": dtype, **training}},
                        n_inputs=n_inputs, n_outputs=n_outputs, task=task)
    net = Network(spec["network"], n_inputs, spec["training"]["dtype"])
    net.initialize(np.random.default_rng(0))
    return Trainer(net, spec["training"], classification=task == "classification")


def regression_data(n: int = 50, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(n, 3)) * scale
    return X, np.c_[np.tanh(X[:, 0]), X[:, 1] - X[:, 2]]


DIVERGENT: list[tuple[dict[str, Any], str, str]] = [
    ({"name": "sgd", "learning_rate": 1e6}, "tanh", "float32"),
    ({"name": "sgd", "learning_rate": 1e3}, "identity", "float32"),
    ({"name": "sgd", "learning_rate": 1e4, "momentum": 0.9}, "relu", "float64"),
    ({"name": "adam", "learning_rate": 1e30}, "leaky_relu", "float32"),
    ({"name": "rmsprop", "learning_rate": 1e30}, "sigmoid", "float32"),
]


@pytest.mark.parametrize(("optimizer", "hidden", "dtype"), DIVERGENT)
def test_huge_learning_rate_raises_divergence_error(optimizer: dict[str, Any], hidden: str,
                                                    dtype: str) -> None:
    trainer = make_trainer({"optimizer": optimizer, "epochs": 50, "batch_size": 10},
                           [{"units": 5, "activation": hidden}, {"units": 2}], dtype=dtype)
    X, Y = regression_data(scale=10.0)
    snapshots = {0: trainer.network.params.copy()}

    def snapshot(progress: Progress) -> None:
        snapshots[progress.epoch] = progress.trainer.network.params.copy()

    with pytest.raises(DivergenceError) as info:
        trainer.fit(X, Y, callback=snapshot)
    exc = info.value
    assert isinstance(exc, ArithmeticError)
    assert 1 <= exc.epoch <= 50
    assert f"diverged at epoch {exc.epoch}" in str(exc)
    assert "Lower the learning rate" in exc.hint and f"{optimizer['learning_rate']:g}" in exc.hint
    assert exc.hint in str(exc)
    # the epoch that diverged was not recorded, and its updates were undone
    assert trainer.epoch == len(trainer.history) == exc.epoch - 1
    params = trainer.network.params
    assert np.isfinite(params).all()
    np.testing.assert_array_equal(params, snapshots[exc.epoch - 1])


def test_rprop_divergence_hint_is_about_step_sizes() -> None:
    optimizer = {"name": "rprop", "learning_rate": 1e20, "step_max": 1e30}
    trainer = make_trainer({"optimizer": optimizer, "batch_size": "full", "epochs": 50},
                           [{"units": 5, "activation": "identity"}, {"units": 2}])
    X, Y = regression_data(scale=10.0)
    with pytest.raises(DivergenceError) as info:
        trainer.fit(X, Y)
    assert "step_max" in info.value.hint
    assert np.isfinite(trainer.network.params).all()


def overfitting_sine(patience: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """60 noisy rows and a 40-unit net that overfits them: val_loss turns up early."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(60, 2))
    y = np.sin(X[:, 0]) + 0.5 * rng.normal(size=60)
    spec = {"network": {"layers": [{"units": 40, "activation": "tanh"}, {"units": 1}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.03}, "epochs": 500,
                         "batch_size": 8, "validation_split": 0.3,
                         "early_stopping": {"patience": patience}, "seed": 1}}
    return X, y, spec


def test_early_stopping_restores_the_best_weights() -> None:
    X, y, spec = overfitting_sine(patience=5)
    snapshots: dict[int, np.ndarray] = {}

    def snapshot(progress: Progress) -> None:
        snapshots[progress.epoch] = progress.trainer.network.params.copy()

    model = backprop.train(spec, X, y, callback=snapshot)
    assert model.stop_reason == "early_stopping"
    val = [row["val_loss"] for row in model.history]
    best = int(np.argmin(val)) + 1
    assert len(model.history) == best + 5 < 500
    assert model.metrics["epoch"] == best
    assert model.metrics["val_loss"] == val[best - 1]
    np.testing.assert_array_equal(model.network.params, snapshots[best])
    assert not np.array_equal(model.network.params, snapshots[len(model.history)])


def test_early_stopping_min_delta_and_train_loss_without_validation() -> None:
    trainer = make_trainer({"optimizer": {"name": "sgd", "learning_rate": 0.05},
                            "epochs": 200, "early_stopping": {"patience": 3, "min_delta": 1.0}})
    X, Y = regression_data()
    trainer.fit(X, Y)
    # no epoch can improve the (training) loss by 1.0 after the first: stops after 1 + 3 epochs
    assert trainer.stop_reason == "early_stopping"
    assert len(trainer.history) == 4
    assert trainer.best_record() is trainer.history[0]


def test_target_loss_stops_training() -> None:
    trainer = make_trainer({"optimizer": {"name": "adam", "learning_rate": 0.01},
                            "epochs": 500, "batch_size": 8, "target_loss": 0.05})
    X, Y = regression_data()
    history = trainer.fit(X, Y)
    assert trainer.stop_reason == "target_loss"
    assert history[-1]["loss"] <= 0.05 < history[-2]["loss"]
    assert len(history) < 500


def test_callback_returning_true_stops_after_that_epoch() -> None:
    trainer = make_trainer({"epochs": 100})
    X, Y = regression_data()
    seen: list[int] = []

    def stop_at_three(progress: Progress) -> bool:
        seen.append(progress.epoch)
        assert progress.epochs == 100 and progress.batch is None and progress.batches == 2
        assert progress.record is trainer.history[-1]
        assert progress.record["epoch"] == progress.epoch
        assert progress.trainer is trainer
        return progress.epoch == 3

    history = trainer.fit(X, Y, callback=stop_at_three)
    assert seen == [1, 2, 3] and len(history) == 3
    assert trainer.stop_reason == "callback"


def test_callback_every_calls_between_batches() -> None:
    trainer = make_trainer({"epochs": 2, "batch_size": 2, "shuffle": False})
    X, Y = regression_data(n=10)  # 5 batches per epoch
    calls: list[tuple[int, int | None, bool]] = []
    params_at: list[np.ndarray] = []

    def record(progress: Progress) -> None:
        calls.append((progress.epoch, progress.batch, progress.record is None))
        params_at.append(progress.trainer.network.params.copy())
        assert progress.batches == 5

    trainer.fit(X, Y, callback=record, callback_every=2)
    assert calls == [(0, 2, True), (0, 4, True), (1, None, False),
                     (1, 2, True), (1, 4, True), (2, None, False)]
    # every call sees new parameters: the batches in between were applied
    for a, b in itertools.pairwise(params_at):
        assert not np.array_equal(a, b)


def test_callback_between_batches_can_stop() -> None:
    trainer = make_trainer({"epochs": 5, "batch_size": 2})
    X, Y = regression_data(n=10)

    def stop(progress: Progress) -> bool:
        return progress.epoch == 1 and progress.batch == 3

    history = trainer.fit(X, Y, callback=stop, callback_every=1)
    assert trainer.stop_reason == "callback"
    assert len(history) == 1 and trainer.epoch == 1


def test_callback_every_without_a_callback_is_ignored() -> None:
    trainer = make_trainer({"epochs": 3})
    X, Y = regression_data()
    assert len(trainer.fit(X, Y, callback_every=1)) == 3


def test_callback_stop_under_early_stopping_reports_the_weights_it_holds() -> None:
    # Cancelling does not restore the best weights, so the metrics must describe the last epoch.
    X, y, spec = overfitting_sine(patience=50)
    snapshots: dict[int, np.ndarray] = {}

    def stop_at_nine(progress: Progress) -> bool:
        snapshots[progress.epoch] = progress.trainer.network.params.copy()
        return progress.epoch == 9

    model = backprop.train(spec, X, y, callback=stop_at_nine)
    assert model.stop_reason == "callback"
    val = [row["val_loss"] for row in model.history]
    assert int(np.argmin(val)) + 1 < 9  # the best epoch is an earlier one
    held = next(e for e, p in snapshots.items() if np.array_equal(p, model.network.params))
    assert model.metrics["epoch"] == held


def test_validation_rows_are_monitored() -> None:
    trainer = make_trainer({"epochs": 3, "l2": 0.01})
    X, Y = regression_data(n=60)
    history = trainer.fit(X[:40], Y[:40], X[40:], Y[40:])
    last = history[-1]
    expected = trainer.network.loss(X[40:], Y[40:], "mse", 0.01)
    assert last["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert last["accuracy"] is None and last["val_accuracy"] is None


def test_classification_accuracy_is_recorded() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    labels = (X[:, 0] > 0).astype(int)
    Y = np.eye(2)[labels]
    trainer = make_trainer({"epochs": 30, "optimizer": {"name": "adam", "learning_rate": 0.05}},
                           task="classification")
    history = trainer.fit(X[:30], Y[:30], X[30:], Y[30:])
    out = trainer.network.forward(X[30:])
    assert history[-1]["val_accuracy"] == np.mean(out.argmax(axis=1) == labels[30:])
    assert 0.0 <= history[-1]["accuracy"] <= 1.0 and history[-1]["accuracy"] > 0.8


def test_fit_rejects_bad_targets() -> None:
    trainer = make_trainer({"epochs": 1})
    X, Y = regression_data()
    with pytest.raises(ValueError, match="targets must have shape"):
        trainer.fit(X, Y[:, :1])
    with pytest.raises(ValueError, match="no training rows"):
        trainer.fit(X[:0], Y[:0])


def test_checkpoint_restore_on_a_fresh_trainer_continues_identically(kernel: str) -> None:
    config = {"epochs": 8, "batch_size": 16, "kernel": kernel,
              "optimizer": {"name": "adam", "learning_rate": 0.01},
              "early_stopping": {"patience": 50}}
    X, Y = regression_data()
    whole = make_trainer(config)
    whole.fit(X, Y)
    half = make_trainer(config)
    half.fit(X, Y, callback=lambda p: p.epoch == 4)
    data = half.checkpoint()
    fresh = make_trainer(config)
    fresh.restore(data)
    assert fresh.epoch == 4 and fresh.history == []  # the state, not the history
    fresh.fit(X, Y)
    np.testing.assert_array_equal(fresh.network.params, whole.network.params)
    assert without_seconds(half.history + fresh.history) == without_seconds(whole.history)
    assert without_seconds([fresh.best_record()]) == without_seconds([whole.best_record()])
