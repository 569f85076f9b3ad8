"""Weight initialisers: name -> ``f(rng, fan_in, fan_out, scale) -> (fan_in, fan_out) array``.

Biases start at zero. Weights are drawn at random, so no two units start equal (which would make
them learn the same thing forever: the symmetry problem).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Initializer = Callable[[np.random.Generator, int, int, float], np.ndarray]


def _xavier_uniform(rng: np.random.Generator, fan_in: int, fan_out: int, _: float) -> np.ndarray:
    r = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-r, r, size=(fan_in, fan_out))


def _xavier_normal(rng: np.random.Generator, fan_in: int, fan_out: int, _: float) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


def _he_normal(rng: np.random.Generator, fan_in: int, fan_out: int, _: float) -> np.ndarray:
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def _he_uniform(rng: np.random.Generator, fan_in: int, fan_out: int, _: float) -> np.ndarray:
    r = np.sqrt(6.0 / fan_in)
    return rng.uniform(-r, r, size=(fan_in, fan_out))


def _uniform(rng: np.random.Generator, fan_in: int, fan_out: int, scale: float) -> np.ndarray:
    return rng.uniform(-scale, scale, size=(fan_in, fan_out))


INITIALIZERS: dict[str, Initializer] = {
    "xavier": _xavier_uniform,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "he": _he_normal,
    "he_normal": _he_normal,
    "he_uniform": _he_uniform,
    "uniform": _uniform,
}

DEFAULT_UNIFORM_SCALE = 0.5


def initializer(name: str) -> Initializer:
    """The initialiser for ``name``; ``ValueError`` lists the choices."""
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown initializer {name!r}; choose one of {sorted(INITIALIZERS)}"
        ) from None


def default_for(activation: str) -> str:
    """He for the rectifiers, Xavier/Glorot for everything else."""
    return "he" if activation in ("relu", "leaky_relu") else "xavier"
