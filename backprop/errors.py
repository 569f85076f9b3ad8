"""Exceptions raised by the engine."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class SpecError(ValueError):
    """A network or training spec is invalid.

    ``loc`` is the path of the offending field, e.g. ``("training", "optimizer", "name")``,
    so that callers (the HTTP service) can point at it.
    """

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        self.loc = tuple(loc)
        self.msg = msg
        where = ".".join(str(p) for p in self.loc)
        super().__init__(f"{where}: {msg}" if where else msg)


class DivergenceError(ArithmeticError):
    """Training produced a non-finite loss or weight.

    The network's parameters are left at their last finite values (the start of ``epoch``).
    """

    def __init__(self, epoch: int, loss: float, hint: str, what: str | None = None) -> None:
        self.epoch = epoch
        self.loss = loss
        self.hint = hint
        self.what = what or f"the loss became {loss!r}"
        super().__init__(f"training diverged at epoch {epoch}: {self.what}. {hint}")


class GradientCheckError(ArithmeticError):
    """Backpropagated gradients disagree with central differences."""

    def __init__(self, errors: dict[str, float], tolerance: float,
                 report: dict[str, Any] | None = None) -> None:
        self.errors = errors
        self.tolerance = tolerance
        self.report = report  # backprop.model.gradient_check_report, when there is one
        worst = max(errors, key=errors.__getitem__)
        super().__init__(
            f"gradient check failed: layer {worst} has relative error {errors[worst]:.3g} "
            f"(tolerance {tolerance:g})"
        )


def divergence_hint(optimizer: dict[str, Any]) -> str:
    lr = optimizer.get("learning_rate")
    if optimizer["name"] == "rprop":
        return "Lower step_max or the initial step size (learning_rate), or standardize inputs."
    if lr is not None and lr > 10:
        return (f"Lower the learning rate (now {lr:g}; rates above 1 rarely train, try 0.01 to "
                "0.1), standardize the inputs, or add l2 regularisation.")
    return (f"Lower the learning rate (now {lr:g}, try {lr / 10:g}), standardize the inputs, "
            "or add l2 regularisation.")


def what_diverged(loss: float, params: np.ndarray, learning_rate: float) -> str:
    """What went non-finite in an epoch, in words: the loss, or the weights after the updates
    (the loss is computed before each update, so it can still look fine)."""
    if not math.isfinite(loss):
        return f"the loss became {loss!r}"
    bad = int(np.count_nonzero(~np.isfinite(params)))
    lr = f" at learning rate {learning_rate:g}" if math.isfinite(learning_rate) else \
        " (the learning rate itself overflowed to infinity)"
    if bad:
        return (f"the weights overflowed to inf/NaN ({bad} of {params.size}) in that epoch's "
                f"updates{lr}, although the loss before them was {loss:.4g}")
    biggest = float(np.max(np.abs(params)))
    return (f"the weights grew too large to compute with (up to {biggest:.3g}) in that "
            f"epoch's updates{lr}, although the loss before them was {loss:.4g}")
