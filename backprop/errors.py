"""Exceptions raised by the engine."""

from __future__ import annotations

from typing import Any


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

    def __init__(self, epoch: int, loss: float, hint: str) -> None:
        self.epoch = epoch
        self.loss = loss
        self.hint = hint
        super().__init__(
            f"training diverged at epoch {epoch}: the loss became {loss!r}. {hint}"
        )


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
