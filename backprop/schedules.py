"""Learning-rate schedules, evaluated once per epoch.

``rate(epoch)`` gives the learning rate for a (0-based) epoch; ``observe(metric)`` is called
after each epoch with the monitored loss (only ``plateau`` uses it). State exports to a dict.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, ClassVar

# log10 of the largest and of the smallest positive float64: a rate beyond them is inf or 0.
LOG10_MAX = math.log10(sys.float_info.max)
LOG10_MIN = math.log10(5e-324)


class Schedule:
    name: ClassVar[str]
    field: ClassVar[str | None] = None  # the parameter that sets how fast the rate moves

    def __init__(self, base: float) -> None:
        self.base = base

    def rate(self, epoch: int) -> float:
        return self.base

    def log10_factor(self, epoch: int) -> float:
        """``log10(rate(epoch) / base)`` for a schedule fixed in advance (computed without
        overflow), 0 for ``plateau`` (which never rises above its base)."""
        return 0.0

    def first_unrepresentable(self, epochs: int) -> tuple[int, str] | None:
        """The first (1-based) epoch of ``epochs`` whose rate overflows float64 or underflows to
        0, with ``"overflow to infinity"`` or ``"underflow to 0"``; ``None`` when every rate is
        a positive finite number. The fixed schedules are monotonic: the last epoch tells, and
        a bisection finds the first."""
        log_base = math.log10(self.base)
        last = log_base + self.log10_factor(epochs - 1)
        if LOG10_MIN <= last <= LOG10_MAX:
            return None
        what = "overflow to infinity" if last > LOG10_MAX else "underflow to 0"
        lo, hi = 0, epochs - 1  # lo is representable, hi is not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if LOG10_MIN <= log_base + self.log10_factor(mid) <= LOG10_MAX:
                lo = mid
            else:
                hi = mid
        return hi + 1, what

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

    field = "gamma"

    def rate(self, epoch: int) -> float:
        try:
            return self.base * self.gamma ** (epoch // self.step_size)
        except OverflowError:  # refused up front by the spec check; inf means divergence
            return math.inf

    def log10_factor(self, epoch: int) -> float:
        return (epoch // self.step_size) * math.log10(self.gamma)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "step_size": self.step_size, "gamma": self.gamma}


class Exponential(Schedule):
    """``base * gamma ** epoch``."""

    name = "exponential"

    def __init__(self, base: float, gamma: float = 0.95) -> None:
        super().__init__(base)
        self.gamma = _positive("gamma", gamma)

    field = "gamma"

    def rate(self, epoch: int) -> float:
        try:
            return self.base * self.gamma**epoch
        except OverflowError:
            return math.inf

    def log10_factor(self, epoch: int) -> float:
        return epoch * math.log10(self.gamma)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "gamma": self.gamma}


class Inverse(Schedule):
    """Inverse scaling: ``base / (1 + epoch) ** power``."""

    name = "inverse"

    def __init__(self, base: float, power: float = 0.5) -> None:
        super().__init__(base)
        self.power = _positive("power", power)

    field = "power"

    def rate(self, epoch: int) -> float:
        try:
            return self.base / (1.0 + epoch) ** self.power
        except OverflowError:
            return 0.0

    def log10_factor(self, epoch: int) -> float:
        return -self.power * math.log10(1.0 + epoch)

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
