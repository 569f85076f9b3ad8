"""Named findings about a training run: advice drawn from its history and its diagnostics.

``findings(history, diagnostics)`` applies each rule in ``RULES`` and returns the ones that fire,
each as ``{"name", "message", "rule", "threshold", "value", "layer", "epoch"}``: the rule in
words, the threshold it used, the value it saw, and where (layer index, epoch) when that
applies. A finding is advice, never an error. ``history`` is the per-epoch rows of
``Trainer.fit``; ``diagnostics`` is a list of ``{"epoch", "layers": [...]}`` with the per-layer
rows of ``backprop.diagnostics.layer_diagnostics``.

Rules and thresholds:

- ``vanishing_gradients``: median over the recorded epochs of
  ``grad_norm_W(first layer) / grad_norm_W(last layer)`` below ``VANISHING_RATIO`` (1e-3);
- ``exploding_gradients``: that median above ``1 / VANISHING_RATIO`` (1e3), or a layer's
  ``grad_norm_W`` above ``EXPLODING_NORM`` (1e3) at some recorded epoch;
- ``dead_units``: a relu/leaky_relu layer with ``dead_fraction >= DEAD_FRACTION`` (0.5) at the
  last recorded epoch;
- ``saturation``: a hidden sigmoid/tanh layer with ``saturated_fraction >= SATURATED_FRACTION``
  (0.5) at the last recorded epoch (a saturated *output* layer is a confident one, not a fault);
- ``loss_not_decreasing``: the best training loss of the last ``PLATEAU_EPOCHS`` (20) epochs is
  not ``PLATEAU_MIN_IMPROVEMENT`` (0.1 %) below the best before them (ignored once the loss is
  below ``CONVERGED_LOSS``, 1e-6: that is convergence);
- ``overfitting``: the mean validation loss of the last ``OVERFIT_WINDOW`` (5) epochs is
  ``OVERFIT_RISE`` (10 %) or more above its minimum, at least that many epochs after the minimum,
  while the training loss fell since that minimum.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

VANISHING_RATIO = 1e-3
EXPLODING_NORM = 1e3
DEAD_FRACTION = 0.5
SATURATED_FRACTION = 0.5
PLATEAU_EPOCHS = 20
PLATEAU_MIN_IMPROVEMENT = 1e-3
CONVERGED_LOSS = 1e-6
OVERFIT_WINDOW = 5
OVERFIT_RISE = 0.10

History = Sequence[dict[str, Any]]
Diagnostics = Sequence[dict[str, Any]]


def _finding(name: str, message: str, rule: str, threshold: float, value: float,
             layer: int | None = None, epoch: int | None = None) -> dict[str, Any]:
    return {"name": name, "message": message, "rule": rule, "threshold": threshold,
            "value": value, "layer": layer, "epoch": epoch}


def _ratios(diagnostics: Diagnostics) -> list[float]:
    out = []
    for entry in diagnostics:
        layers = entry["layers"]
        if len(layers) < 2:
            continue
        first, last = layers[0]["grad_norm_W"], layers[-1]["grad_norm_W"]
        if first is not None and last:
            out.append(first / last)
    return out


def vanishing_gradients(history: History, diagnostics: Diagnostics) -> dict[str, Any] | None:
    ratios = _ratios(diagnostics)
    if not ratios:
        return None
    value = statistics.median(ratios)
    if value >= VANISHING_RATIO:
        return None
    return _finding(
        "vanishing_gradients",
        f"the first layer's weight gradient is {value:.2g} times the last layer's: the early "
        "layers barely learn. Try tanh or relu hidden units, Xavier/He initialisation, fewer "
        "layers, or standardized inputs.",
        "median over recorded epochs of grad_norm_W(first layer) / grad_norm_W(last layer) "
        "< threshold", VANISHING_RATIO, value, 0, diagnostics[-1]["epoch"])


def exploding_gradients(history: History, diagnostics: Diagnostics) -> dict[str, Any] | None:
    ratios = _ratios(diagnostics)
    if ratios and (value := statistics.median(ratios)) > 1.0 / VANISHING_RATIO:
        return _finding(
            "exploding_gradients",
            f"the first layer's weight gradient is {value:.3g} times the last layer's. Lower "
            "the learning rate or the initial weights, or standardize the inputs.",
            "median over recorded epochs of grad_norm_W(first layer) / grad_norm_W(last "
            "layer) > threshold", 1.0 / VANISHING_RATIO, value, 0, diagnostics[-1]["epoch"])
    worst: tuple[float, int, int] | None = None
    for entry in diagnostics:
        for row in entry["layers"]:
            norm = row["grad_norm_W"]
            if norm is not None and (worst is None or norm > worst[0]):
                worst = (norm, row["layer"], entry["epoch"])
    if worst is None or worst[0] <= EXPLODING_NORM:
        return None
    return _finding(
        "exploding_gradients",
        f"layer {worst[1]}'s weight gradient norm reached {worst[0]:.3g} at epoch {worst[2]}. "
        "Lower the learning rate, standardize the inputs, or add l2 regularisation.",
        "grad_norm_W of some layer at some recorded epoch > threshold", EXPLODING_NORM,
        worst[0], worst[1], worst[2])


def _last_layers(diagnostics: Diagnostics) -> tuple[int, list[dict[str, Any]]] | None:
    if not diagnostics:
        return None
    return diagnostics[-1]["epoch"], diagnostics[-1]["layers"]


def dead_units(history: History, diagnostics: Diagnostics) -> dict[str, Any] | None:
    last = _last_layers(diagnostics)
    if last is None:
        return None
    epoch, layers = last
    hits = [r for r in layers if r.get("dead_fraction") is not None
            and r["dead_fraction"] >= DEAD_FRACTION]
    if not hits:
        return None
    row = max(hits, key=lambda r: r["dead_fraction"])
    return _finding(
        "dead_units",
        f"{row['dead_fraction']:.0%} of layer {row['layer']}'s {row['activation']} units are "
        f"never active on the sampled rows at epoch {epoch}: they pass no gradient and no "
        "longer learn. Lower the learning rate, use leaky_relu, He initialisation, or check "
        "for large negative biases.",
        "dead_fraction (units with z <= 0 on every sampled row) of a rectifier layer at the "
        "last recorded epoch >= threshold", DEAD_FRACTION, row["dead_fraction"], row["layer"],
        epoch)


def saturation(history: History, diagnostics: Diagnostics) -> dict[str, Any] | None:
    last = _last_layers(diagnostics)
    if last is None:
        return None
    epoch, layers = last
    hits = [r for r in layers[:-1] if r.get("saturated_fraction") is not None
            and r["saturated_fraction"] >= SATURATED_FRACTION]
    if not hits:
        return None
    row = max(hits, key=lambda r: r["saturated_fraction"])
    return _finding(
        "saturation",
        f"{row['saturated_fraction']:.0%} of layer {row['layer']}'s {row['activation']} "
        f"outputs are within 1 % of their bounds at epoch {epoch}, where the derivative is "
        "nearly 0. Standardize the inputs, use smaller initial weights, or relu units.",
        "saturated_fraction of a hidden sigmoid/tanh layer at the last recorded epoch "
        ">= threshold", SATURATED_FRACTION, row["saturated_fraction"], row["layer"], epoch)


def loss_not_decreasing(history: History, diagnostics: Diagnostics) -> dict[str, Any] | None:
    if len(history) <= PLATEAU_EPOCHS:
        return None
    losses = [row["loss"] for row in history]
    before = min(losses[:-PLATEAU_EPOCHS])
    recent = min(losses[-PLATEAU_EPOCHS:])
    if before < CONVERGED_LOSS:
        return None
    improvement = (before - recent) / before
    if improvement >= PLATEAU_MIN_IMPROVEMENT:
        return None
    return _finding(
        "loss_not_decreasing",
        f"the training loss has not improved by {PLATEAU_MIN_IMPROVEMENT:.1%} in the last "
        f"{PLATEAU_EPOCHS} epochs (best {before:.4g} before, {recent:.4g} since). Try another "
        "learning rate or schedule, or a larger network; or stop earlier.",
        f"relative improvement of the best training loss over the last {PLATEAU_EPOCHS} epochs "
        "< threshold", PLATEAU_MIN_IMPROVEMENT, improvement, None, history[-1]["epoch"])


def overfitting(history: History, diagnostics: Diagnostics) -> dict[str, Any] | None:
    val = [(i, row["val_loss"]) for i, row in enumerate(history) if row["val_loss"] is not None]
    if len(val) < 2 * OVERFIT_WINDOW:
        return None
    best_i, best = min(val, key=lambda item: item[1])
    if len(history) - 1 - best_i < OVERFIT_WINDOW or best <= 0:
        return None
    recent = statistics.fmean(v for _, v in val[-OVERFIT_WINDOW:])
    rise = (recent - best) / best
    train_then, train_now = history[best_i]["loss"], history[-1]["loss"]
    if rise < OVERFIT_RISE or not train_now < train_then:
        return None
    return _finding(
        "overfitting",
        f"the validation loss rose {rise:.0%} above its minimum ({best:.4g} at epoch "
        f"{history[best_i]['epoch']}) while the training loss fell from {train_then:.4g} to "
        f"{train_now:.4g}. Use early_stopping, l2, a smaller network or more data.",
        f"(mean val_loss of the last {OVERFIT_WINDOW} epochs - min val_loss) / min val_loss "
        ">= threshold while the training loss fell", OVERFIT_RISE, rise, None,
        history[best_i]["epoch"])


RULES: dict[str, Callable[[History, Diagnostics], dict[str, Any] | None]] = {
    "vanishing_gradients": vanishing_gradients,
    "exploding_gradients": exploding_gradients,
    "dead_units": dead_units,
    "saturation": saturation,
    "loss_not_decreasing": loss_not_decreasing,
    "overfitting": overfitting,
}


def findings(history: History, diagnostics: Diagnostics = ()) -> list[dict[str, Any]]:
    """The findings that fire for a run (see the module docstring for every rule)."""
    out = []
    for rule in RULES.values():
        found = rule(history, diagnostics)
        if found is not None:
            out.append(found)
    return out
