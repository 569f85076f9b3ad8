"""Per-layer diagnostics of a network while it trains.

At the end of a diagnostic epoch a ``Probe`` runs the engine's own backward pass on a fixed
*sample* of the training rows (the first ``SAMPLE_ROWS``, the same rows every epoch) with a
shadow copy of the network at the epoch-end weights, and gets the parameters before the epoch's
last optimiser step from the trainer. A fixed sample rather than the last batch: with online or
small batches the last batch's gradient is one row's (zero for an all-zero input row) and a unit
inactive on one row is not dead. Nothing here touches the training network or its RNG: training
with diagnostics gives bit-for-bit the weights and history of training without them.

Per layer (``layer_diagnostics``):

- ``grad_norm_W``, ``grad_norm_b``: Euclidean norms of d(loss)/dW and d(loss)/db on the sample
  (L2 term included, as in training);
- ``weight_norm``: norm of W after the step; ``update_ratio``: ||W_after - W_before|| /
  ||W_before|| of that last step (``None`` when W_before is all zeros);
- ``activation_mean``, ``activation_std``: of the layer's outputs over the sample;
- ``dead_fraction`` (relu, leaky_relu): fraction of units with ``z <= 0`` on every sample row;
- ``saturated_fraction`` (sigmoid, tanh): fraction of the outputs (rows x units) within 1 % of
  the output range from a bound (sigmoid: ``a <= 0.01`` or ``a >= 0.99``; tanh: ``|a| >= 0.98``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .activations import activation
from .losses import Loss
from .network import Network

SAMPLE_ROWS = 256
SATURATION_MARGIN = 0.01  # of the output range
RECTIFIERS = frozenset({"relu", "leaky_relu"})
BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
FIELDS = ("grad_norm_W", "grad_norm_b", "weight_norm", "update_ratio", "activation_mean",
          "activation_std", "dead_fraction", "saturated_fraction")


def layer_outputs(network: Network, X: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(z, a)`` of every layer for inputs ``X`` ``(n_samples, n_inputs)``, in the network's
    dtype: ``z = a_prev @ W + b`` ``(n_samples, units)`` and ``a = f(z)``. New arrays."""
    a = np.asarray(X, dtype=network.dtype)
    out = []
    for w, b, name in zip(network.weights, network.biases, network.activations, strict=True):
        z = a @ w
        z += b
        a = z.copy()
        forward = activation(name).forward
        if forward is not None:
            forward(a)
        out.append((z, a))
    return out


def _norm(x: np.ndarray) -> float:
    x = x.ravel().astype(np.float64)  # a float32 sum of squares overflows past norms of ~1e19
    return math.sqrt(float(np.dot(x, x)))


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def dead_fraction(name: str, z: np.ndarray) -> float | None:
    """Fraction of units never active (``z <= 0``) over the rows of ``z``; rectifiers only."""
    if name not in RECTIFIERS:
        return None
    return float(np.count_nonzero((z <= 0).all(axis=0))) / z.shape[1]


def saturated_fraction(name: str, a: np.ndarray) -> float | None:
    """Fraction of outputs within 1 % of the output range from a bound; sigmoid and tanh only."""
    bounds = BOUNDS.get(name)
    if bounds is None:
        return None
    low, high = bounds
    margin = SATURATION_MARGIN * (high - low)
    hits = np.count_nonzero((a <= low + margin) | (a >= high - margin))
    return float(hits) / a.size


def layer_diagnostics(network: Network, sample: np.ndarray,
                      params_before: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One dict per layer (``layer``, ``activation`` and ``FIELDS``) from the network's
    parameters and gradients (``network.grads``, taken as the gradient on ``sample``), the
    parameters before the last optimiser step (``params_before``, same layout; ``None`` leaves
    ``update_ratio`` empty) and the rows ``sample`` ``(n_samples, n_inputs)`` in the network's
    input space."""
    params, grads = network.params, network.grads
    outputs = layer_outputs(network, sample) if len(sample) else None
    rows = []
    for i, ((ws, bs), name) in enumerate(zip(network.slices, network.activations, strict=True)):
        weight_norm = _norm(params[ws])
        ratio = None
        if params_before is not None:
            before = _norm(params_before[ws])
            if before > 0:
                ratio = _norm(params[ws] - params_before[ws]) / before
        row: dict[str, Any] = {
            "layer": i,
            "activation": name,
            "grad_norm_W": _norm(grads[ws]),
            "grad_norm_b": _norm(grads[bs]),
            "weight_norm": weight_norm,
            "update_ratio": ratio,
            "activation_mean": None, "activation_std": None,
            "dead_fraction": None, "saturated_fraction": None,
        }
        if outputs is not None:
            z, a = outputs[i]
            row["activation_mean"] = float(np.mean(a, dtype=np.float64))
            row["activation_std"] = float(np.std(a, dtype=np.float64))
            row["dead_fraction"] = dead_fraction(name, z)
            row["saturated_fraction"] = saturated_fraction(name, a)
        for key in FIELDS:
            row[key] = _finite(row[key])
        rows.append(row)
    return rows


class Probe:
    """Diagnostics of a training network on the first ``SAMPLE_ROWS`` rows of ``X, Y``.

    Holds a shadow copy of the network (made once), so that the training network's gradient
    and work buffers are never touched."""

    def __init__(self, network: Network, X: np.ndarray, Y: np.ndarray, loss: Loss,
                 l2: float = 0.0) -> None:
        self.shadow = network.copy()
        self.X, self.Y = X[:SAMPLE_ROWS], Y[:SAMPLE_ROWS]
        self.loss, self.l2 = loss, l2

    def __call__(self, network: Network, params_before: np.ndarray | None
                 ) -> list[dict[str, Any]]:
        np.copyto(self.shadow.params, network.params)
        self.shadow.loss_and_grad(self.X, self.Y, self.loss, self.l2)
        return layer_diagnostics(self.shadow, self.X, params_before)
