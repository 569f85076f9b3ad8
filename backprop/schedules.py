"""Learning-rate schedules, evaluated once per epoch.

``rate(epoch)`` gives the learning rate for a (0-based) epoch; ``observe(metric)`` is called
after each epoch with the monitored loss (only ``plateau`` uses it). State exports to a dict.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar


class Schedule:
    name: ClassVar[str]

    def __init__(self, base: float) -> None:
        self.base = base

    def rate(self, epoch: int) -> float:
        return self.base

    def observe(self, metric: float) -> None:
        pass

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name}

    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


def _real(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # not True, "0.5", [1]
        raise ValueError(f"{name} must be a number, got {value!r}")


def _positive(name: str, value: float, *, integer: bool = False) -> float:
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    _real(name, value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value


class Constant(Schedule):
    name = "constant"


class Step(Schedule):
    """``base * gamma ** (epoch // step_size)``."""

    name = "step"

    def __init__(self, base: float, step_size: int = 10, gamma: float = 0.5) -> None:
        super().__init__(base)
        self.step_size = int(_positive("step_size", step_size, integer=True))
        self.gamma = _positive("gamma", gamma)

    def rate(self, epoch: int) -> float:
        return self.base * self.gamma ** (epoch // self.step_size)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "step_size": self.step_size, "gamma": self.gamma}


class Exponential(Schedule):
    """``base * gamma ** epoch``."""

    name = "exponential"

    def __init__(self, base: float, gamma: float = 0.95) -> None:
        super().__init__(base)
        self.gamma = _positive("gamma", gamma)

    def rate(self, epoch: int) -> float:
        return self.base * self.gamma**epoch

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "gamma": self.gamma}


class Inverse(Schedule):
    """Inverse scaling: ``base / (1 + epoch) ** power``."""

    name = "inverse"

    def __init__(self, base: float, power: float = 0.5) -> None:
        super().__init__(base)
        self.power = _positive("power", power)

    def rate(self, epoch: int) -> float:
        return self.base / (1.0 + epoch) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "power": self.power}


class Plateau(Schedule):
    """Reduce on plateau: multiply the rate by ``factor`` once the monitored loss has not
    improved by ``min_delta`` for ``patience`` epochs; never below ``min_lr``."""

    name = "plateau"

    def __init__(self, base: float, factor: float = 0.5, patience: int = 10,
                 min_delta: float = 1e-4, min_lr: float = 0.0) -> None:
        super().__init__(base)
        for name, value in (("factor", factor), ("min_delta", min_delta), ("min_lr", min_lr)):
            _real(name, value)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        self.factor = float(factor)
        self.patience = int(_positive("patience", patience, integer=True))
        if not (math.isfinite(min_delta) and min_delta >= 0):
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        if not (math.isfinite(min_lr) and min_lr >= 0):
            raise ValueError(f"min_lr must be >= 0, got {min_lr!r}")
        self.min_delta, self.min_lr = float(min_delta), float(min_lr)
        self.current, self.best, self.wait = base, math.inf, 0

    def rate(self, epoch: int) -> float:
        return self.current

    def observe(self, metric: float) -> None:
        if metric < self.best - self.min_delta:
            self.best, self.wait = metric, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.current = max(self.current * self.factor, self.min_lr)
            self.wait = 0

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "factor": self.factor, "patience": self.patience,
                "min_delta": self.min_delta, "min_lr": self.min_lr}

    def get_state(self) -> dict[str, Any]:
        return {"current": self.current, "best": self.best, "wait": self.wait}

    def set_state(self, state: dict[str, Any]) -> None:
        self.current = float(state["current"])
        self.best = float(state["best"])
        self.wait = int(state["wait"])


SCHEDULES: dict[str, type[Schedule]] = {
    cls.name: cls for cls in (Constant, Step, Exponential, Inverse, Plateau)
}


def schedule_from_config(base: float, config: dict[str, Any]) -> Schedule:
    """Build a schedule from ``{"name": ..., **parameters}`` around the base learning rate."""
    config = dict(config)
    name = config.pop("name", "constant")
    try:
        cls = SCHEDULES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown lr_schedule {name!r}; choose one of {sorted(SCHEDULES)}"
        ) from None
    return cls(base, **config)
