"""Optimisers over one flat parameter array.

Each optimiser validates its hyper-parameters in ``__init__``, builds its state on the first
``step(params, grads)`` (one flat array each, updated in place: a few vector operations whatever
the depth of the network), and exports ``get_config()`` / ``get_state()`` / ``set_state()`` so that
a checkpoint can restore it exactly. ``learning_rate`` is a plain attribute the schedule sets.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar

import numpy as np


def _check(name: str, value: float, low: float, high: float, *, low_open: bool = False,
           high_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # not True, "0.1", [1]
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if not (math.isfinite(value) and ok_low and ok_high):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}{low:g}, {high:g}{hi}, got {value}")
    return value


class Optimizer:
    """Base class: state is a dict of arrays (same shape as the parameters) and scalars."""

    name: ClassVar[str]
    full_batch_only: ClassVar[bool] = False

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = _check("learning_rate", learning_rate, 0.0, math.inf,
                                    low_open=True)
        self._scratch: np.ndarray | None = None

    def _build(self, params: np.ndarray) -> None:
        self._scratch = np.empty_like(params)

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "learning_rate": self.learning_rate}

    def get_state(self) -> dict[str, Any]:
        """Arrays and scalars that, with the config, reproduce the next step exactly."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        pass


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    ``v <- mu v - lr g``; ``p <- p + v`` (classic) or ``p <- p + mu v - lr g`` (Nesterov, in the
    form of Sutskever et al. 2013 as used by Keras and scikit-learn).
    """

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(learning_rate)
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        if not isinstance(nesterov, bool):
            raise ValueError(f"nesterov must be true or false, got {nesterov!r}")
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov needs momentum > 0")
        self.nesterov = nesterov
        self.velocity: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self._scratch is None:
            self._build(params)
        tmp = self._scratch
        np.multiply(grads, self.learning_rate, out=tmp)
        if self.momentum == 0.0:
            params -= tmp
            return
        if self.velocity is None:
            self.velocity = np.zeros_like(params)
        v = self.velocity
        v *= self.momentum
        v -= tmp
        if self.nesterov:
            params -= tmp
            np.multiply(v, self.momentum, out=tmp)
            params += tmp
        else:
            params += v

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}

    def get_state(self) -> dict[str, Any]:
        return {} if self.velocity is None else {"velocity": self.velocity}

    def set_state(self, state: dict[str, Any]) -> None:
        self.velocity = None if "velocity" not in state else np.array(state["velocity"])


class Adagrad(Optimizer):
    """``G <- G + g^2``; ``p <- p - lr g / (sqrt(G) + eps)``."""

    name = "adagrad"

    def __init__(self, learning_rate: float = 0.01, epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        self.epsilon = _check("epsilon", epsilon, 0.0, 1.0, low_open=True)
        self.accumulator: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self.accumulator is None:
            self._build(params)
            self.accumulator = np.zeros_like(params)
        tmp, acc = self._scratch, self.accumulator
        np.multiply(grads, grads, out=tmp)
        acc += tmp
        np.sqrt(acc, out=tmp)
        tmp += self.epsilon
        np.divide(grads, tmp, out=tmp)
        tmp *= self.learning_rate
        params -= tmp

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}

    def get_state(self) -> dict[str, Any]:
        return {} if self.accumulator is None else {"accumulator": self.accumulator}

    def set_state(self, state: dict[str, Any]) -> None:
        if "accumulator" in state:
            self._scratch = None
            self.accumulator = np.array(state["accumulator"])
            self._build(self.accumulator)


class RMSprop(Optimizer):
    """``s <- rho s + (1 - rho) g^2``; ``p <- p - lr g / (sqrt(s) + eps)``."""

    name = "rmsprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9,
                 epsilon: float = 1e-7) -> None:
        super().__init__(learning_rate)
        self.rho = _check("rho", rho, 0.0, 1.0)
        self.epsilon = _check("epsilon", epsilon, 0.0, 1.0, low_open=True)
        self.mean_square: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self.mean_square is None:
            self._build(params)
            self.mean_square = np.zeros_like(params)
        tmp, s = self._scratch, self.mean_square
        np.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - self.rho
        s *= self.rho
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.epsilon
        np.divide(grads, tmp, out=tmp)
        tmp *= self.learning_rate
        params -= tmp

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}

    def get_state(self) -> dict[str, Any]:
        return {} if self.mean_square is None else {"mean_square": self.mean_square}

    def set_state(self, state: dict[str, Any]) -> None:
        if "mean_square" in state:
            self.mean_square = np.array(state["mean_square"])
            self._build(self.mean_square)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction:
    ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
    ``p <- p - lr * m_hat / (sqrt(v_hat) + eps)``.
    """

    name = "adam"

    def __init__(self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8) -> None:
        super().__init__(learning_rate)
        self.beta1 = _check("beta1", beta1, 0.0, 1.0)
        self.beta2 = _check("beta2", beta2, 0.0, 1.0)
        self.epsilon = _check("epsilon", epsilon, 0.0, 1.0, low_open=True)
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.t = 0

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self.m is None:
            self._build(params)
            self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        tmp, m, v = self._scratch, self.m, self.v
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        m *= b1
        np.multiply(grads, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # lr * m_hat / (sqrt(v_hat) + eps), with the corrections folded into two scalars.
        c2 = math.sqrt(1.0 - b2**self.t)
        step = self.learning_rate * c2 / (1.0 - b1**self.t)
        np.sqrt(v, out=tmp)
        tmp += self.epsilon * c2
        np.divide(m, tmp, out=tmp)
        tmp *= step
        params -= tmp

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta1": self.beta1, "beta2": self.beta2,
                "epsilon": self.epsilon}

    def get_state(self) -> dict[str, Any]:
        return {} if self.m is None else {"m": self.m, "v": self.v, "t": self.t}

    def set_state(self, state: dict[str, Any]) -> None:
        if "m" in state:
            self.m, self.v = np.array(state["m"]), np.array(state["v"])
            self.t = int(state["t"])
            self._build(self.m)


class Rprop(Optimizer):
    """iRprop- (Igel & Hüsken 2000): per-weight step sizes adapted from the gradient's sign.

    Full batch only. ``learning_rate`` is the initial step size; schedules do not apply.
    Where the gradient's sign flips, the step shrinks by ``eta_minus`` and that gradient is
    treated as zero for one step; where it holds, the step grows by ``eta_plus``.
    """

    name = "rprop"
    full_batch_only = True

    def __init__(self, learning_rate: float = 0.01, eta_plus: float = 1.2,
                 eta_minus: float = 0.5, step_min: float = 1e-6, step_max: float = 50.0) -> None:
        super().__init__(learning_rate)
        self.eta_plus = _check("eta_plus", eta_plus, 1.0, math.inf, low_open=True)
        self.eta_minus = _check("eta_minus", eta_minus, 0.0, 1.0, low_open=True)
        self.step_min = _check("step_min", step_min, 0.0, math.inf)
        self.step_max = _check("step_max", step_max, self.step_min, math.inf, low_open=True)
        self.steps: np.ndarray | None = None
        self.prev_grads: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        if self.steps is None:
            self._build(params)
            self.steps = np.full_like(params, self.learning_rate)
            self.prev_grads = np.zeros_like(params)
        tmp, steps, prev = self._scratch, self.steps, self.prev_grads
        np.multiply(grads, prev, out=tmp)
        grow, shrink = tmp > 0.0, tmp < 0.0
        steps[grow] *= self.eta_plus
        steps[shrink] *= self.eta_minus
        np.clip(steps, self.step_min, self.step_max, out=steps)
        np.copyto(prev, grads)
        prev[shrink] = 0.0
        np.sign(prev, out=tmp)
        tmp *= steps
        params -= tmp

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "eta_plus": self.eta_plus, "eta_minus": self.eta_minus,
                "step_min": self.step_min, "step_max": self.step_max}

    def get_state(self) -> dict[str, Any]:
        return {} if self.steps is None else {"steps": self.steps, "prev_grads": self.prev_grads}

    def set_state(self, state: dict[str, Any]) -> None:
        if "steps" in state:
            self.steps = np.array(state["steps"])
            self.prev_grads = np.array(state["prev_grads"])
            self._build(self.steps)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, Adagrad, RMSprop, Adam, Rprop)
}


def optimizer_from_config(config: dict[str, Any]) -> Optimizer:
    """Build an optimiser from ``{"name": ..., **hyper_parameters}``."""
    config = dict(config)
    name = config.pop("name", "sgd")
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}"
        ) from None
    return cls(**config)
