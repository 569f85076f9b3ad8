"""Continuing a trained model (``train(continue_from=...)``): bit for bit the uninterrupted run
when nothing changes, a fresh optimiser when it does, the architecture fixed, and a run stopped
from outside keeps its best weights and a state to go on from."""

from typing import Any

import numpy as np
import pytest

import backprop
from backprop import Progress, SpecError

from .test_training import RESUME_CONFIGS, blobs, resume_spec, without_seconds


def data(classification: bool) -> tuple[np.ndarray, Any]:
    X, labels, targets = blobs()
    return X, labels if classification else targets


def with_epochs(spec: dict[str, Any], epochs: int) -> dict[str, Any]:
    return {**spec, "training": {**spec["training"], "epochs": epochs}}


@pytest.mark.parametrize("name", sorted(RESUME_CONFIGS))
def test_ten_then_ten_more_is_twenty_bit_for_bit(name: str, kernel: str) -> None:
    classification = RESUME_CONFIGS[name][1]
    X, y = data(classification)
    spec = resume_spec(name, classification, kernel)
    whole = backprop.train(spec, X, y)
    first = backprop.train(with_epochs(spec, 10), X, y)
    assert first.epochs_done == 10 and first.training_state is not None
    more = backprop.train(with_epochs(spec, 10), X, y, continue_from=first)
    assert more.kept == {"optimizer": True, "schedule": True, "rng": True, "best": True}
    np.testing.assert_array_equal(more.network.params, whole.network.params)
    assert more.history[0]["epoch"] == 11
    assert without_seconds(first.history + more.history) == without_seconds(whole.history)
    assert (more.metrics, more.stop_reason) == (whole.metrics, whole.stop_reason)
    assert more.epochs_done == whole.epochs_done
    assert more.spec["training"]["epochs"] == 10  # the spec counts this run's epochs
    probe = X[:5]
    np.testing.assert_array_equal(more.predict(probe), whole.predict(probe))


def test_a_model_that_stopped_early_goes_on_from_its_last_weights() -> None:
    """Early stopping put the best weights in the model; its state keeps the last ones, so
    continuing is the run that ignored the stop (with a fresh patience)."""
    X, y = data(False)
    spec = resume_spec("adam-early-stop-after-checkpoint", False)
    stopped = backprop.train(spec, X, y)
    assert stopped.stop_reason == "early_stopping"
    assert stopped.metrics["epoch"] < stopped.epochs_done
    more = backprop.train(with_epochs(spec, 2), X, y, continue_from=stopped)
    assert [r["epoch"] for r in more.history] == [stopped.epochs_done + 1,
                                                  stopped.epochs_done + 2]
    patient = {**spec["training"], "early_stopping": {"patience": 1000, "min_delta": 1e-3}}
    longer = backprop.train({**spec, "training": {**patient, "epochs": stopped.epochs_done + 2}},
                            X, y)
    assert without_seconds(more.history) == without_seconds(longer.history[-2:])


def test_a_new_optimiser_starts_fresh_and_says_so() -> None:
    X, y = data(True)
    spec = resume_spec("nesterov-step-schedule-float64", True)
    first = backprop.train(spec, X, y)
    adam = with_epochs(spec, 5)
    adam["training"] = {**adam["training"], "optimizer": {"name": "adam",
                                                          "learning_rate": 0.01}}
    more = backprop.train(adam, X, y, continue_from=first)
    assert more.kept == {"optimizer": False, "schedule": False, "rng": True, "best": True}
    # the step schedule goes on counting epochs: at epoch 21 it has halved the rate 5 times
    assert more.history[0]["epoch"] == 21
    assert more.history[0]["learning_rate"] == pytest.approx(0.01 * 0.5**5)
    # It starts where the first model ended: its first epoch's loss is close to the last one.
    assert more.history[0]["loss"] < first.history[0]["loss"]
    reseeded = with_epochs(spec, 5)
    reseeded["training"] = {**reseeded["training"], "seed": 99}
    assert backprop.train(reseeded, X, y, continue_from=first).kept["rng"] is False


def test_another_dataset_of_the_same_width_keeps_the_scaling_and_classes() -> None:
    X, labels, _ = blobs()
    spec = resume_spec("rprop-full-batch", True)
    first = backprop.train(spec, X, labels)
    X2, labels2, _ = blobs(n=60, seed=9)
    keep = labels2 != "c"  # a subset of the classes is fine
    more = backprop.train(with_epochs(spec, 3), X2[keep], labels2[keep], continue_from=first,
                          same_data=False)
    assert more.classes == first.classes and more.kept is not None
    assert more.kept["best"] is False
    np.testing.assert_array_equal(more.standardizer.mean, first.standardizer.mean)
    with pytest.raises(ValueError, match="unknown class label 'z'"):
        backprop.train(with_epochs(spec, 3), X2[:4], ["a", "b", "z", "a"], continue_from=first)


@pytest.mark.parametrize(("change", "loc"), [
    (lambda s: s["network"]["layers"][0].update(units=6), ("network", "layers", 0, "units")),
    (lambda s: s["network"]["layers"][0].update(activation="relu"),
     ("network", "layers", 0, "activation")),
    (lambda s: s["network"]["layers"].insert(0, {"units": 3}), ("network", "layers")),
    (lambda s: s["training"].update(dtype="float64"), ("training", "dtype")),
    (lambda s: s["training"].update(standardize=False), ("training", "standardize")),
])
def test_a_different_architecture_is_refused_naming_the_field(change: Any, loc: tuple) -> None:
    X, y = data(True)
    spec = resume_spec("rprop-full-batch", True)
    first = backprop.train(spec, X, y)
    changed = with_epochs(spec, 3)
    changed["network"] = {"layers": [dict(layer) for layer in spec["network"]["layers"]]}
    changed["training"] = dict(changed["training"])
    change(changed)
    with pytest.raises(SpecError) as info:
        backprop.train(changed, X, y, continue_from=first)
    assert info.value.loc == loc
    with pytest.raises(SpecError, match="input columns"):
        backprop.train(with_epochs(spec, 3), X[:, :3], y, continue_from=first)


def test_a_run_stopped_from_outside_keeps_its_best_weights_and_can_go_on() -> None:
    X, y = data(True)
    spec = resume_spec("sgd-momentum-shuffle-minibatch-validation-es-plateau", True)
    spec["training"].update(early_stopping=None, epochs=40)
    whole = backprop.train(spec, X, y)

    def stop_at_25(progress: Progress) -> bool:
        return progress.epoch == 25

    cut = backprop.train(spec, X, y, callback=stop_at_25)
    assert cut.stop_reason == "callback" and cut.epochs_done == 25
    rows = cut.history
    best = min(rows, key=lambda r: r["val_loss"])
    assert cut.metrics["epoch"] == best["epoch"] and cut.metrics["val_loss"] == best["val_loss"]
    # the weights are those of the best epoch: their validation loss is that epoch's
    again = backprop.train({**spec, "training": {**spec["training"], "epochs": best["epoch"]}},
                           X, y)
    np.testing.assert_array_equal(cut.network.params, again.network.params)
    # ...and its state is the last epoch's: going on gives the uninterrupted run
    more = backprop.train(with_epochs(spec, 15), X, y, continue_from=cut)
    np.testing.assert_array_equal(more.network.params, whole.network.params)


def test_without_validation_a_stopped_run_keeps_its_last_weights() -> None:
    X, y = data(False)
    spec = resume_spec("adam-l2-regression", False)
    cut = backprop.train(spec, X, y, callback=lambda p: p.epoch == 7)
    assert cut.metrics["epoch"] == 7 == cut.epochs_done
    seven = backprop.train(with_epochs(spec, 7), X, y)
    np.testing.assert_array_equal(cut.network.params, seven.network.params)


def test_a_model_without_a_training_state_cannot_be_continued() -> None:
    X, y = data(True)
    spec = resume_spec("rprop-full-batch", True)
    loaded = backprop.Model.from_bytes(backprop.train(spec, X, y).to_bytes())
    assert loaded.training_state is None
    with pytest.raises(ValueError, match="keeps no training state"):
        backprop.train(spec, X, y, continue_from=loaded)
