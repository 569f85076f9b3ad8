"""Loss functions in a name -> functions table.

All losses are means over samples of a per-sample sum over outputs:

- ``mse``: ``1/(2n) * sum((a - y)^2)`` (the classic ½ squared error, averaged over samples);
- ``binary_cross_entropy``: ``-1/n * sum(y log a + (1 - y) log(1 - a))`` on sigmoid outputs;
- ``cross_entropy``: ``-1/n * sum(y log a)`` on softmax outputs, ``y`` one-hot (or a distribution).

Each entry has ``value(a, y) -> float`` and ``value_and_delta(a, y, out) -> float``, which also
writes into ``out`` the gradient with respect to the output layer's *pre-activation* when the loss
is fused with its output activation (``fused``: ``(a - y) / n`` for both cross-entropies), or with
respect to the output ``a`` otherwise (the network then applies the activation's derivative).
Both fused gradients and the MSE gradient are ``(a - y) / n``: one subtraction and one scaling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

_EPS32 = 1e-7  # log clipping; representable next to 1.0 in float32


def _clip(a: np.ndarray) -> np.ndarray:
    eps = _EPS32 if a.dtype == np.float32 else 1e-15
    return np.clip(a, eps, 1.0 - eps)


def _mse_value(a: np.ndarray, y: np.ndarray) -> float:
    diff = a - y
    return 0.5 * float(np.vdot(diff, diff)) / a.shape[0]


def _mse_value_and_delta(a: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    np.subtract(a, y, out=out)
    value = 0.5 * float(np.vdot(out, out)) / a.shape[0]
    out *= 1.0 / a.shape[0]
    return value


def _diff_delta(a: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    np.subtract(a, y, out=out)
    out *= 1.0 / a.shape[0]


def _ce_value(a: np.ndarray, y: np.ndarray) -> float:
    return -float(np.vdot(y, np.log(_clip(a)))) / a.shape[0]


def _bce_value(a: np.ndarray, y: np.ndarray) -> float:
    a = _clip(a)
    return -float(np.vdot(y, np.log(a)) + np.vdot(1.0 - y, np.log1p(-a))) / a.shape[0]


def _ce_value_and_delta(a: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    _diff_delta(a, y, out)
    return _ce_value(a, y)


def _bce_value_and_delta(a: np.ndarray, y: np.ndarray, out: np.ndarray) -> float:
    _diff_delta(a, y, out)
    return _bce_value(a, y)


class Loss(NamedTuple):
    value: Callable[[np.ndarray, np.ndarray], float]
    value_and_delta: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    fused: str | None  # the output activation this loss is fused with, if any
    outputs: frozenset[str]  # output activations the loss accepts


_ALL_OUTPUTS = frozenset({"identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"})

LOSSES: dict[str, Loss] = {
    "mse": Loss(_mse_value, _mse_value_and_delta, None, _ALL_OUTPUTS),
    "binary_cross_entropy": Loss(_bce_value, _bce_value_and_delta, "sigmoid",
                                 frozenset({"sigmoid"})),
    "cross_entropy": Loss(_ce_value, _ce_value_and_delta, "softmax", frozenset({"softmax"})),
}


def loss(name: str) -> Loss:
    """The loss entry for ``name``; ``ValueError`` lists the choices."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None


def check_pairing(loss_name: str, output_activation: str) -> None:
    """Raise ``ValueError`` unless ``loss_name`` can train an ``output_activation`` layer."""
    entry = loss(loss_name)
    if output_activation not in entry.outputs:
        pairs = "; ".join(
            f"{name} with {' or '.join(sorted(e.outputs)) if e.outputs != _ALL_OUTPUTS else 'any'}"
            for name, e in sorted(LOSSES.items())
        )
        raise ValueError(
            f"loss {loss_name!r} cannot train a {output_activation!r} output layer; "
            f"valid pairings: {pairs}"
        )
