"""Spec validation: every bad field raises SpecError (a ValueError) with its path and, for
names, the valid choices; good specs come back fully explicit."""

import copy
from typing import Any

import pytest

from backprop import SpecError, count_parameters, resolve_spec
from backprop.spec import TRAINING_DEFAULTS


def spec(training: dict[str, Any] | None = None, layers: list[dict[str, Any]] | None = None,
         **network: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"network": {"layers": layers or [{"units": 4}, {"units": 3}],
                                       **network}}
    if training is not None:
        out["training"] = training
    return out


def resolve(s: Any, task: str | None = "classification", n_inputs: int = 5,
            n_outputs: int | None = 3) -> dict[str, Any]:
    return resolve_spec(s, n_inputs=n_inputs, n_outputs=n_outputs, task=task)


BAD: list[tuple[str, Any, dict[str, Any], tuple[Any, ...], list[str]]] = [
    # id, spec, resolve kwargs, loc, substrings of the message
    ("unknown activation", spec(layers=[{"units": 4, "activation": "gelu"}, {"units": 3}]), {},
     ("network", "layers", 0, "activation"), ["'gelu'", "'tanh'", "'leaky_relu'", "'softmax'"]),
    ("activation not a string", spec(layers=[{"units": 4, "activation": 1}, {"units": 3}]), {},
     ("network", "layers", 0, "activation"), ["'relu'"]),
    ("softmax hidden", spec(layers=[{"units": 4, "activation": "softmax"}, {"units": 3}]), {},
     ("network", "layers", 0, "activation"), ["output layer only"]),
    ("unknown optimizer", spec({"optimizer": {"name": "sgdd"}}), {},
     ("training", "optimizer", "name"), ["'sgdd'", "'adam'", "'rprop'", "'adagrad'"]),
    ("unknown optimizer string", spec({"optimizer": "nadam"}), {},
     ("training", "optimizer", "name"), ["'nadam'", "'rmsprop'"]),
    ("unknown loss", spec({"loss": "hinge"}), {},
     ("training", "loss"), ["'hinge'", "'mse'", "'cross_entropy'", "'binary_cross_entropy'"]),
    ("ce with sigmoid", spec({"loss": "cross_entropy"},
                             [{"units": 4}, {"units": 3, "activation": "sigmoid"}]), {},
     ("training", "loss"), ["valid pairings", "cross_entropy with softmax",
                            "binary_cross_entropy with sigmoid", "mse with any"]),
    ("bce with softmax", spec({"loss": "binary_cross_entropy"}), {},
     ("training", "loss"), ["valid pairings"]),
    ("rprop minibatch", spec({"optimizer": "rprop"}), {},
     ("training", "batch_size"), ["full"]),
    ("rprop batch 10", spec({"optimizer": "rprop", "batch_size": 10}), {},
     ("training", "batch_size"), ["full"]),
    ("rprop schedule", spec({"optimizer": "rprop", "batch_size": "full",
                             "lr_schedule": "step"}), {},
     ("training", "lr_schedule"), ["constant"]),
    ("negative learning rate", spec({"optimizer": {"name": "adam", "learning_rate": -0.01}}), {},
     ("training", "optimizer", "learning_rate"), ["learning_rate must be in (0, inf)"]),
    ("bool learning rate", spec({"optimizer": {"name": "sgd", "learning_rate": True}}), {},
     ("training", "optimizer", "learning_rate"), ["must be a number"]),
    ("string learning rate", spec({"optimizer": {"name": "sgd", "learning_rate": "0.1"}}), {},
     ("training", "optimizer", "learning_rate"), ["must be a number"]),
    ("momentum 1", spec({"optimizer": {"name": "sgd", "momentum": 1.0}}), {},
     ("training", "optimizer", "momentum"), ["[0, 1)"]),
    ("momentum 1.5", spec({"optimizer": {"name": "sgd", "momentum": 1.5}}), {},
     ("training", "optimizer", "momentum"), ["[0, 1)"]),
    ("nesterov without momentum", spec({"optimizer": {"name": "sgd", "nesterov": True}}), {},
     ("training", "optimizer", "nesterov"), ["momentum > 0"]),
    ("optimizer typo", spec({"optimizer": {"name": "sgd", "momentun": 0.9}}), {},
     ("training", "optimizer", "momentun"), ["unknown field", "'sgd'"]),
    ("optimizer field of another optimizer", spec({"optimizer": {"name": "sgd", "beta1": 0.9}}),
     {}, ("training", "optimizer", "beta1"), ["unknown field"]),
    ("optimizer not an object", spec({"optimizer": 3}), {},
     ("training", "optimizer"), ["must be an object"]),
    ("schedule typo", spec({"lr_schedule": {"name": "step", "gama": 0.5}}), {},
     ("training", "lr_schedule", "gama"), ["unknown field"]),
    ("unknown schedule", spec({"lr_schedule": "cosine"}), {},
     ("training", "lr_schedule", "name"), ["'cosine'", "'plateau'", "'step'"]),
    ("schedule bad value", spec({"lr_schedule": {"name": "plateau", "factor": 2.0}}), {},
     ("training", "lr_schedule", "factor"), ["(0, 1)"]),
    ("schedule bool", spec({"lr_schedule": {"name": "step", "gamma": True}}), {},
     ("training", "lr_schedule", "gamma"), ["must be a number"]),
    ("schedule string", spec({"lr_schedule": {"name": "plateau", "factor": "half"}}), {},
     ("training", "lr_schedule", "factor"), ["must be a number"]),
    ("training typo", spec({"epoch": 10}), {},
     ("training", "epoch"), ["unknown field", "'epochs'", "'batch_size'"]),
    ("top-level typo", {**spec(), "trainig": {}}, {},
     ("trainig",), ["unknown field", "'network'", "'training'"]),
    ("network typo", spec(activation="tanh"), {},
     ("network", "activation"), ["unknown field", "'layers'"]),
    ("layer typo", spec(layers=[{"units": 4, "activaton": "relu"}, {"units": 3}]), {},
     ("network", "layers", 0, "activaton"), ["unknown field", "'activation'"]),
    ("early stopping typo", spec({"early_stopping": {"patiense": 3}}), {},
     ("training", "early_stopping", "patiense"), ["unknown field", "'patience'"]),
    ("output units vs classes", spec(layers=[{"units": 4}, {"units": 2}]), {},
     ("network", "layers", 1, "units"), ["2 units", "3 classes"]),
    ("output units vs targets", spec(layers=[{"units": 4}, {"units": 2}]),
     {"task": "regression", "n_outputs": 1},
     ("network", "layers", 1, "units"), ["2 units", "1 target columns"]),
    ("1-unit classification not sigmoid",
     spec(layers=[{"units": 4}, {"units": 1, "activation": "tanh"}]), {"n_outputs": 2},
     ("network", "layers", 1, "activation"), ["sigmoid"]),
    ("softmax one unit", spec(layers=[{"units": 4}, {"units": 1, "activation": "softmax"}]),
     {"task": "regression", "n_outputs": 1}, ("network", "layers", 1, "units"), [">= 2 units"]),
    ("inputs mismatch", spec(inputs=4), {}, ("network", "inputs"), ["5 input columns"]),
    ("validation split 1", spec({"validation_split": 1.0}), {},
     ("training", "validation_split"), ["[0, 1)"]),
    ("validation split negative", spec({"validation_split": -0.1}), {},
     ("training", "validation_split"), ["[0, 1)"]),
    ("bool epochs", spec({"epochs": True}), {}, ("training", "epochs"), ["integer"]),
    ("float epochs", spec({"epochs": 10.0}), {}, ("training", "epochs"), ["integer"]),
    ("zero epochs", spec({"epochs": 0}), {}, ("training", "epochs"), [">= 1"]),
    ("bool batch size", spec({"batch_size": True}), {}, ("training", "batch_size"), ["integer"]),
    ("batch size word", spec({"batch_size": "all"}), {}, ("training", "batch_size"),
     ["integer"]),
    ("bool units", spec(layers=[{"units": True}, {"units": 3}]), {},
     ("network", "layers", 0, "units"), ["integer"]),
    ("missing units", spec(layers=[{"activation": "tanh"}, {"units": 3}]), {},
     ("network", "layers", 0, "units"), ["integer"]),
    ("bool seed", spec({"seed": False}), {}, ("training", "seed"), ["integer"]),
    ("negative seed", spec({"seed": -1}), {}, ("training", "seed"), [">= 0"]),
    ("huge seed", spec({"seed": 2**63}), {}, ("training", "seed"), ["2**63"]),
    ("int shuffle", spec({"shuffle": 1}), {}, ("training", "shuffle"), ["true or false"]),
    ("string standardize", spec({"standardize": "yes"}), {}, ("training", "standardize"),
     ["true or false"]),
    ("bool l2", spec({"l2": True}), {}, ("training", "l2"), ["number"]),
    ("negative l2", spec({"l2": -1e-3}), {}, ("training", "l2"), ["[0, inf]"]),
    ("nan target", spec({"target_loss": float("nan")}), {}, ("training", "target_loss"),
     ["finite"]),
    ("bool patience", spec({"early_stopping": {"patience": True}}), {},
     ("training", "early_stopping", "patience"), ["integer"]),
    ("early stopping true", spec({"early_stopping": True}), {},
     ("training", "early_stopping"), ["must be an object"]),
    ("unknown dtype", spec({"dtype": "float16"}), {}, ("training", "dtype"),
     ["'float32'", "'float64'"]),
    ("unknown init", spec(init="glorot"), {}, ("network", "init"), ["'xavier'", "'he'"]),
    ("unknown layer init", spec(layers=[{"units": 4, "init": "zeros"}, {"units": 3}]), {},
     ("network", "layers", 0, "init"), ["'he_uniform'"]),
    ("bad init scale", spec(init_scale=0.0), {}, ("network", "init_scale"), ["1e-12"]),
    ("empty layers", {"network": {"layers": []}}, {},
     ("network", "layers"), ["non-empty list"]),
    ("layers not a list", {"network": {"layers": {"units": 3}}}, {},
     ("network", "layers"), ["non-empty list"]),
    ("layer not an object", spec(layers=[4, {"units": 3}]), {},
     ("network", "layers", 0), ["must be an object"]),
    ("no network", {"training": {}}, {}, ("network",), ["required"]),
    ("training not an object", spec([]), {}, ("training",), ["must be an object"]),
]


@pytest.mark.parametrize(("bad", "kwargs", "loc", "words"), [case[1:] for case in BAD],
                         ids=[case[0] for case in BAD])
def test_bad_spec_raises_spec_error_naming_the_field(bad: Any, kwargs: dict[str, Any],
                                                     loc: tuple[Any, ...],
                                                     words: list[str]) -> None:
    before = copy.deepcopy(bad)
    with pytest.raises(ValueError) as info:
        resolve(bad, **kwargs)
    exc = info.value
    assert isinstance(exc, SpecError)
    assert exc.loc == loc
    msg = str(exc)
    assert msg.startswith(".".join(map(str, loc)) + ": ")
    for word in words:
        assert word in msg, (word, msg)
    assert bad == before  # validation does not modify the caller's spec


def test_spec_must_be_an_object() -> None:
    with pytest.raises(SpecError) as info:
        resolve([1, 2])
    assert info.value.loc == ()
    assert "must be an object" in str(info.value)


def test_bad_task_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        resolve(spec(), task="clustering")


def test_resolved_spec_is_fully_explicit() -> None:
    out = resolve(spec({"seed": 3}), task="classification")
    net, tr = out["network"], out["training"]
    assert net == {"inputs": 5, "init": None, "layers": [
        {"units": 4, "activation": "tanh", "init": "xavier"},
        {"units": 3, "activation": "softmax", "init": "xavier"}]}
    assert set(tr) == set(TRAINING_DEFAULTS)
    assert tr["loss"] == "cross_entropy"
    assert tr["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.0,
                               "nesterov": False}
    assert tr["lr_schedule"] == {"name": "constant"}
    assert tr["dtype"] == "float32"
    assert tr["batch_size"] == 32 and tr["epochs"] == 100 and tr["seed"] == 3
    assert tr["early_stopping"] is None and tr["target_loss"] is None
    assert tr["standardize"] is True and tr["shuffle"] is True
    # resolving the resolved spec changes nothing
    assert resolve(out, task="classification") == out


@pytest.mark.parametrize(("task", "units", "activation", "loss"), [
    ("classification", 3, "softmax", "cross_entropy"),
    ("classification", 1, "sigmoid", "binary_cross_entropy"),
    ("regression", 3, "identity", "mse"),
    (None, 3, "identity", "mse"),
])
def test_output_activation_and_loss_follow_the_task(task: str | None, units: int,
                                                    activation: str, loss: str) -> None:
    n_outputs = 2 if units == 1 else units
    out = resolve(spec(layers=[{"units": 4}, {"units": units}]), task=task, n_outputs=n_outputs)
    assert out["network"]["layers"][-1]["activation"] == activation
    assert out["training"]["loss"] == loss


def test_sigmoid_output_for_regression_defaults_to_mse() -> None:
    out = resolve(spec(layers=[{"units": 4}, {"units": 3, "activation": "sigmoid"}]),
                  task="regression")
    assert out["training"]["loss"] == "mse"


def test_initializer_defaults_follow_the_activation() -> None:
    layers = [{"units": 4, "activation": "relu"}, {"units": 4, "activation": "leaky_relu"},
              {"units": 4, "activation": "sigmoid"}, {"units": 4, "activation": "relu",
                                                      "init": "xavier_normal"},
              {"units": 3}]
    out = resolve(spec(layers=layers))
    assert [layer["init"] for layer in out["network"]["layers"]] == [
        "he", "he", "xavier", "xavier_normal", "xavier"]
    out = resolve(spec(layers=layers, init="uniform"))
    assert [layer["init"] for layer in out["network"]["layers"]] == [
        "uniform", "uniform", "uniform", "xavier_normal", "uniform"]


def test_missing_seed_is_drawn_and_recorded() -> None:
    seeds = {resolve(spec())["training"]["seed"] for _ in range(5)}
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)
    assert len(seeds) > 1


def test_optimizer_as_a_name_gets_its_defaults() -> None:
    out = resolve(spec({"optimizer": "adam"}))
    assert out["training"]["optimizer"] == {"name": "adam", "learning_rate": 0.001,
                                            "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}


def test_rprop_with_full_batches_is_accepted() -> None:
    out = resolve(spec({"optimizer": "rprop", "batch_size": "full"}))
    assert out["training"]["batch_size"] == "full"
    assert out["training"]["optimizer"]["name"] == "rprop"


def test_early_stopping_defaults() -> None:
    out = resolve(spec({"early_stopping": {}}))
    assert out["training"]["early_stopping"] == {"patience": 10, "min_delta": 0.0}


def test_output_units_unchecked_without_data_shape() -> None:
    out = resolve(spec(), task=None, n_outputs=None)
    assert out["network"]["layers"][-1]["units"] == 3


def test_count_parameters() -> None:
    assert count_parameters(5, [4, 3]) == (5 + 1) * 4 + (4 + 1) * 3
    assert count_parameters(2, [2, 1]) == 9  # the classic XOR net
