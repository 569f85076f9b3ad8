"""Validation of network and training specs, and resolution of their defaults.

A spec is a JSON-able dict with two parts, the same shape the HTTP API takes::

    {"network": {"layers": [{"units": 16, "activation": "tanh"}, ...], "init": "xavier"},
     "training": {"loss": ..., "optimizer": {"name": "sgd", ...}, "epochs": ..., ...}}

``resolve_spec`` checks every field, fills every default (including those that follow the data:
input width, output activation, loss, initialiser, seed) and returns a new, fully explicit spec.
Errors are ``SpecError`` with the field's path and, for names, the valid choices.
"""

from __future__ import annotations

import itertools
import math
import secrets
from typing import Any

from .activations import ACTIVATIONS, OUTPUT_ONLY
from .errors import SpecError
from .initializers import DEFAULT_UNIFORM_SCALE, INITIALIZERS, default_for
from .kernels import KERNELS
from .kernels import choose as choose_kernel
from .losses import LOSSES, check_pairing
from .optimizers import OPTIMIZERS, optimizer_from_config
from .schedules import SCHEDULES, Plateau, Schedule, schedule_from_config

TASKS = ("regression", "classification")
DTYPES = ("float32", "float64")

TRAINING_DEFAULTS: dict[str, Any] = {
    "loss": None,
    "optimizer": {"name": "sgd"},
    "epochs": 100,
    "batch_size": 32,
    "shuffle": True,
    "l2": 0.0,
    "lr_schedule": {"name": "constant"},
    "validation_split": 0.0,
    "early_stopping": None,
    "target_loss": None,
    "standardize": True,
    "seed": None,
    "gradient_check": False,
    "dtype": "float32",
    "diagnostics": None,
    "kernel": "auto",
}
EARLY_STOPPING_DEFAULTS = {"patience": 10, "min_delta": 0.0}
DIAGNOSTICS_DEFAULTS = {"every": 10}

Loc = tuple[str | int, ...]


def _mapping(value: Any, loc: Loc) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(loc, f"must be an object, got {type(value).__name__}")
    return value


def _no_extra(value: dict[str, Any], allowed: set[str] | dict[str, Any], loc: Loc) -> None:
    for key in value:
        if key not in allowed:
            raise SpecError((*loc, key), f"unknown field; valid fields: {sorted(allowed)}")


def _int(value: Any, loc: Loc, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(loc, f"must be an integer, got {value!r}")
    if value < low:
        raise SpecError(loc, f"must be >= {low}, got {value}")
    return value


def _number(value: Any, loc: Loc, low: float = -math.inf, high: float = math.inf,
            *, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(loc, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise SpecError(loc, f"must be finite, got {value}")
    if value < low or value > high or (high_open and value == high):
        bracket = ")" if high_open else "]"
        raise SpecError(loc, f"must be in [{low:g}, {high:g}{bracket}, got {value:g}")
    return value


def _bool(value: Any, loc: Loc) -> bool:
    if not isinstance(value, bool):
        raise SpecError(loc, f"must be true or false, got {value!r}")
    return value


def _choice(value: Any, choices: Any, loc: Loc, what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(loc, f"unknown {what} {value!r}; choose one of {sorted(choices)}")
    return value


def _component(value: Any, loc: Loc, table: dict[str, Any], what: str,
               default: str) -> dict[str, Any]:
    """``"name"`` or ``{"name": ..., **params}`` -> a dict, the name checked."""
    if isinstance(value, str):
        value = {"name": value}
    value = dict(_mapping(value, loc))
    value["name"] = _choice(value.get("name", default), table, (*loc, "name"), what)
    return value


def _build(factory: Any, config: dict[str, Any], loc: Loc) -> Any:
    """Instantiate a component; its constructor's errors carry the field that is wrong."""
    try:
        return factory(config)
    except TypeError as exc:  # an unexpected keyword argument
        bad = next((k for k in config if k != "name" and f"'{k}'" in str(exc)), None)
        raise SpecError((*loc, bad) if bad else loc,
                        f"unknown field for {config['name']!r}") from None
    except ValueError as exc:
        field = str(exc).split(" ", 1)[0]
        raise SpecError((*loc, field) if field in config else loc, str(exc)) from None


def resolve_network(network: Any, *, n_inputs: int, n_outputs: int | None = None,
                    task: str | None = None) -> dict[str, Any]:
    """Check ``network`` and return it fully explicit (``inputs``, per-layer ``init``)."""
    loc: Loc = ("network",)
    network = _mapping(network, loc)
    _no_extra(network, {"layers", "init", "init_scale", "inputs"}, loc)
    if "inputs" in network and network["inputs"] != n_inputs:
        raise SpecError((*loc, "inputs"), f"is {network['inputs']!r} but the data has "
                        f"{n_inputs} input columns")
    layers = network.get("layers")
    if not isinstance(layers, list) or not layers:
        raise SpecError((*loc, "layers"), "must be a non-empty list of layers")
    net_init = network.get("init")
    if net_init is not None:
        _choice(net_init, INITIALIZERS, (*loc, "init"), "initializer")
    scale = _number(network.get("init_scale", DEFAULT_UNIFORM_SCALE), (*loc, "init_scale"),
                    1e-12, 1e6)
    resolved = []
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        lloc = (*loc, "layers", i)
        layer = _mapping(layer, lloc)
        _no_extra(layer, {"units", "activation", "init"}, lloc)
        units = _int(layer.get("units"), (*lloc, "units"))
        act = layer.get("activation")
        if act is None:
            act = "tanh" if i < last else _default_output(task, units)
        act = _choice(act, ACTIVATIONS, (*lloc, "activation"), "activation")
        if act in OUTPUT_ONLY and i != last:
            raise SpecError((*lloc, "activation"), f"{act!r} is allowed on the output layer only")
        init = layer.get("init", net_init) or default_for(act)
        init = _choice(init, INITIALIZERS, (*lloc, "init"), "initializer")
        resolved.append({"units": units, "activation": act, "init": init})
    if n_outputs is not None and resolved[-1]["units"] != n_outputs:
        binary_ok = task == "classification" and n_outputs == 2
        if not (binary_ok and resolved[-1]["units"] == 1):
            what = "classes" if task == "classification" else "target columns"
            raise SpecError((*loc, "layers", last, "units"),
                            f"the output layer has {resolved[-1]['units']} units but the data "
                            f"has {n_outputs} {what}")
    if task == "classification" and resolved[-1]["units"] == 1 \
            and resolved[-1]["activation"] != "sigmoid":
        raise SpecError((*loc, "layers", last, "activation"),
                        "a 1-unit classification output must be 'sigmoid' (2 classes)")
    if resolved[-1]["activation"] == "softmax" and resolved[-1]["units"] < 2:
        raise SpecError((*loc, "layers", last, "units"), "a softmax layer needs >= 2 units")
    out = {"inputs": int(n_inputs), "layers": resolved, "init": net_init}
    if "init_scale" in network:
        out["init_scale"] = scale
    return out


def _default_output(task: str | None, units: int) -> str:
    if task == "classification":
        return "sigmoid" if units == 1 else "softmax"
    return "identity"


def _default_loss(task: str | None, output: str) -> str:
    if output == "softmax":
        return "cross_entropy"
    if output == "sigmoid" and task == "classification":
        return "binary_cross_entropy"
    return "mse"


def resolve_training(training: Any, *, output_activation: str,
                     task: str | None = None) -> dict[str, Any]:
    """Check ``training`` and return it with every default filled in."""
    loc: Loc = ("training",)
    training = _mapping({} if training is None else training, loc)
    _no_extra(training, TRAINING_DEFAULTS, loc)
    t = {**TRAINING_DEFAULTS, **training}

    loss = t["loss"] or _default_loss(task, output_activation)
    loss = _choice(loss, LOSSES, (*loc, "loss"), "loss")
    try:
        check_pairing(loss, output_activation)
    except ValueError as exc:
        raise SpecError((*loc, "loss"), str(exc)) from None

    opt = _component(t["optimizer"], (*loc, "optimizer"), OPTIMIZERS, "optimizer", "sgd")
    built = _build(optimizer_from_config, opt, (*loc, "optimizer"))
    opt = built.get_config()

    epochs = _int(t["epochs"], (*loc, "epochs"))
    bs = t["batch_size"]
    if bs != "full":
        bs = _int(bs, (*loc, "batch_size"))
    if built.full_batch_only and bs != "full":
        raise SpecError((*loc, "batch_size"),
                        f"optimizer {opt['name']!r} works on full batches only; "
                        "set batch_size to \"full\"")

    sched = _component(t["lr_schedule"], (*loc, "lr_schedule"), SCHEDULES, "lr_schedule",
                       "constant")
    if built.full_batch_only and sched["name"] != "constant":
        raise SpecError((*loc, "lr_schedule"),
                        f"optimizer {opt['name']!r} adapts its own step sizes; "
                        "use the 'constant' schedule")
    sched = _build(lambda c: schedule_from_config(1.0, c), sched,
                   (*loc, "lr_schedule")).get_config()
    if not built.full_batch_only:
        _check_rates(schedule_from_config(opt["learning_rate"], sched), epochs,
                     (*loc, "lr_schedule"))

    es = t["early_stopping"]
    if es is not None:
        es = _mapping(es, (*loc, "early_stopping"))
        _no_extra(es, EARLY_STOPPING_DEFAULTS, (*loc, "early_stopping"))
        es = {**EARLY_STOPPING_DEFAULTS, **es}
        es["patience"] = _int(es["patience"], (*loc, "early_stopping", "patience"))
        es["min_delta"] = _number(es["min_delta"], (*loc, "early_stopping", "min_delta"), 0.0)

    seed = t["seed"]
    if seed is None:
        seed = secrets.randbits(32)
    seed = _int(seed, (*loc, "seed"), low=0)
    if seed >= 2**63:
        raise SpecError((*loc, "seed"), "must be below 2**63")

    target = t["target_loss"]
    if target is not None:
        target = _number(target, (*loc, "target_loss"), 0.0)

    return {
        "loss": loss,
        "optimizer": opt,
        "epochs": epochs,
        "batch_size": bs,
        "shuffle": _bool(t["shuffle"], (*loc, "shuffle")),
        "l2": _number(t["l2"], (*loc, "l2"), 0.0),
        "lr_schedule": sched,
        "validation_split": _number(t["validation_split"], (*loc, "validation_split"), 0.0, 1.0,
                                    high_open=True),
        "early_stopping": es,
        "target_loss": target,
        "standardize": _bool(t["standardize"], (*loc, "standardize")),
        "seed": seed,
        "gradient_check": _bool(t["gradient_check"], (*loc, "gradient_check")),
        "dtype": _choice(t["dtype"], DTYPES, (*loc, "dtype"), "dtype"),
        "diagnostics": _diagnostics(t["diagnostics"], (*loc, "diagnostics")),
        "kernel": _choice(t["kernel"], KERNELS, (*loc, "kernel"), "kernel"),
    }


def _diagnostics(value: Any, loc: Loc) -> dict[str, Any] | None:
    """``None`` (off) or ``{"every": k}``: per-layer diagnostics every k epochs."""
    if value is None:
        return None
    value = _mapping(value, loc)
    _no_extra(value, DIAGNOSTICS_DEFAULTS, loc)
    value = {**DIAGNOSTICS_DEFAULTS, **value}
    return {"every": _int(value["every"], (*loc, "every"))}


def _check_rates(schedule: Schedule, epochs: int, loc: Loc) -> None:
    """Every epoch's learning rate must be a positive finite number: a schedule that overflows
    float64 (or underflows to 0) is refused here, naming the parameter, not found in training."""
    if isinstance(schedule, Plateau) and schedule.min_lr > schedule.base:
        raise SpecError((*loc, "min_lr"), f"min_lr ({schedule.min_lr:g}) is above the learning "
                        f"rate ({schedule.base:g}): the rate would rise on a plateau")
    bad = schedule.first_unrepresentable(epochs)
    if bad is None or schedule.field is None:
        return
    epoch, what = bad
    value = getattr(schedule, schedule.field)
    remedy = {"power": "a smaller power", "gamma": "a gamma closer to 1"}[schedule.field]
    if schedule.name == "step":
        remedy += ", a larger step_size"
    raise SpecError((*loc, schedule.field),
                    f"{schedule.field} {value:g} makes the learning rate ({schedule.base:g} at "
                    f"epoch 1) {what} by epoch {epoch} of {epochs}; choose {remedy} or fewer "
                    "epochs")


def resolve_spec(spec: Any, *, n_inputs: int, n_outputs: int | None = None,
                 task: str | None = None, n_rows: int | None = None) -> dict[str, Any]:
    """Validate a whole spec against the data's shape; return it fully explicit.

    ``n_outputs`` is the number of target columns (regression) or of classes (classification);
    ``n_rows`` (when known) sizes a full batch for the ``auto`` kernel choice, which the
    resolved spec records as ``numpy`` or ``compiled``.
    """
    spec = _mapping(spec, ())
    _no_extra(spec, {"network", "training"}, ())
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if "network" not in spec:
        raise SpecError(("network",), "is required")
    network = resolve_network(spec["network"], n_inputs=n_inputs, n_outputs=n_outputs,
                              task=task)
    training = resolve_training(spec.get("training"), task=task,
                                output_activation=network["layers"][-1]["activation"])
    units = [layer["units"] for layer in network["layers"]]
    n_weights = sum(a * b for a, b in itertools.pairwise([n_inputs, *units]))
    train_rows = None if n_rows is None else \
        max(1, n_rows - round(n_rows * training["validation_split"]))
    try:
        training["kernel"] = choose_kernel(training["kernel"], n_weights,
                                           training["batch_size"], train_rows)
    except ValueError as exc:
        raise SpecError(("training", "kernel"), str(exc)) from None
    return {"network": network, "training": training}


def count_parameters(n_inputs: int, units: list[int]) -> int:
    """Weights and biases of dense layers ``n_inputs -> units[0] -> ... -> units[-1]``."""
    sizes = [n_inputs, *units]
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def check_continuable(spec: dict[str, Any], source: dict[str, Any]) -> None:
    """A resolved ``spec`` can go on from a model trained with resolved ``source``: the same
    architecture (inputs, layers' units and activations), dtype and input scaling. Raises
    ``SpecError`` naming the first field that differs."""
    net, old = spec["network"], source["network"]
    if net["inputs"] != old["inputs"]:
        raise SpecError(("network", "inputs"), f"the data has {net['inputs']} input columns; "
                        f"the model to continue from takes {old['inputs']}")
    if len(net["layers"]) != len(old["layers"]):
        raise SpecError(("network", "layers"), f"has {len(net['layers'])} layers; the model to "
                        f"continue from has {len(old['layers'])}")
    for i, (layer, was) in enumerate(zip(net["layers"], old["layers"], strict=True)):
        for field in ("units", "activation"):
            if layer[field] != was[field]:
                raise SpecError(("network", "layers", i, field),
                                f"is {layer[field]!r}; the model to continue from has "
                                f"{was[field]!r} (the architecture cannot change)")
    for field in ("dtype", "standardize"):
        if spec["training"][field] != source["training"][field]:
            raise SpecError(("training", field), f"is {spec['training'][field]!r}; the model to "
                            f"continue from was trained with {source['training'][field]!r}")
