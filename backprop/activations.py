"""Activation functions and their derivatives, in a name -> functions table.

Each entry is ``(forward, backward)``, both working in place on preallocated arrays:

- ``forward(z)`` overwrites ``z`` (shape ``(n_samples, units)``) with ``f(z)``;
- ``backward(a, delta, tmp)`` multiplies ``delta`` (dL/da) in place by ``f'`` written in terms of
  the stored output ``a = f(z)``, so backward never recomputes forward. ``tmp`` is scratch space
  of the same shape. For softmax this is the Jacobian-vector product.

``identity`` has ``None`` for both: the training loop skips the call altogether.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

LEAKY_SLOPE = 0.01

# 0-d float32 constants: a ufunc takes them about twice as fast as Python floats (no scalar
# conversion per call), and they promote to float64 arrays exactly.
_HALF, _ONE, _ZERO = (np.array(v, dtype=np.float32) for v in (0.5, 1.0, 0.0))


def _sigmoid(z: np.ndarray) -> None:
    # 0.5 * (1 + tanh(z / 2)): the logistic function with no overflow for large |z|.
    z *= _HALF
    np.tanh(z, out=z)
    z += _ONE
    z *= _HALF


def _sigmoid_back(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
    np.subtract(_ONE, a, out=tmp)  # f'(z) = a (1 - a)
    tmp *= a
    delta *= tmp


def _tanh(z: np.ndarray) -> None:
    np.tanh(z, out=z)


def _tanh_back(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
    np.multiply(a, a, out=tmp)  # f'(z) = 1 - a^2
    np.subtract(_ONE, tmp, out=tmp)
    delta *= tmp


def _relu(z: np.ndarray) -> None:
    np.maximum(z, _ZERO, out=z)


def _relu_back(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
    np.greater(a, _ZERO, out=tmp)  # f'(z) = 1 where a > 0
    delta *= tmp


def _leaky_relu(z: np.ndarray) -> None:
    np.maximum(z, LEAKY_SLOPE * z, out=z)


def _leaky_relu_back(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
    # a > 0 exactly where z > 0, since the slope is positive.
    np.greater(a, 0.0, out=tmp)
    tmp *= 1.0 - LEAKY_SLOPE
    tmp += LEAKY_SLOPE
    delta *= tmp


def _softmax(z: np.ndarray) -> None:
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)


def _softmax_back(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
    # J^T v for J = diag(a) - a a^T:  a * (v - <v, a>)
    np.multiply(delta, a, out=tmp)
    delta -= tmp.sum(axis=1, keepdims=True)
    delta *= a


Forward = Callable[[np.ndarray], None]
Backward = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


class Activation(NamedTuple):
    forward: Forward | None
    backward: Backward | None


ACTIVATIONS: dict[str, Activation] = {
    "identity": Activation(None, None),
    "sigmoid": Activation(_sigmoid, _sigmoid_back),
    "tanh": Activation(_tanh, _tanh_back),
    "relu": Activation(_relu, _relu_back),
    "leaky_relu": Activation(_leaky_relu, _leaky_relu_back),
    "softmax": Activation(_softmax, _softmax_back),
}

OUTPUT_ONLY = frozenset({"softmax"})


def activation(name: str) -> Activation:
    """The ``(forward, backward)`` pair for ``name``; ``ValueError`` lists the choices."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def apply(name: str, z: np.ndarray) -> np.ndarray:
    """``f(z)`` as a new array (a convenience; the network uses the in-place forms)."""
    out = np.array(z, dtype=np.result_type(z, np.float32), copy=True, ndmin=2)
    forward = activation(name).forward
    if forward is not None:
        forward(out)
    return out
