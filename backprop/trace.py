"""One step of backpropagation, traced layer by layer, in float64.

For a few rows ``X`` ``(m, n_inputs)`` (in the network's input space, i.e. after any
standardisation) and targets ``Y`` ``(m, n_outputs)``, ``trace`` returns per layer ``l``:

- ``z`` = a_{l-1} W_l + b_l, the weighted sums, and ``a`` = f(z), the activations;
- ``delta`` = dE/dz_l. At the output, ``delta`` = dE/da ⊙ f'(z) (for softmax the Jacobian
  product), which is ``(a - y) / m`` when the loss is fused with its output (softmax with
  cross-entropy, sigmoid with binary cross-entropy). Below it, the 1986 recursion
  ``delta_l = f'(z_l) ⊙ (delta_{l+1} W_{l+1}^T)``;
- ``grad_W`` = a_{l-1}^T delta_l (+ l2 W_l) and ``grad_b`` = the column sums of delta_l;

and the loss E (mean over the rows, plus ``l2/2 * sum(W**2)``). With ``check=True`` also the
central-difference gradients ``(E(p + eps) - E(p - eps)) / (2 eps)`` of every parameter beside
them, and per layer the relative error ``max|analytic - numeric| / max(max|analytic|,
max|numeric|)`` (the measure ``gradient_check`` uses).

Sign convention: ``delta`` is dE/dz, so a gradient-descent step is ``W -= rate * grad_W``. The
1986 paper's delta is the negative of this one (``(t - o) f'(net)``, with ``W += rate * delta
* o``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import activation
from .diagnostics import layer_outputs
from .losses import loss as get_loss
from .network import Network

DEFAULT_EPS = 1e-6


def _relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    scale = max(float(np.abs(analytic).max(initial=0.0)), float(np.abs(numeric).max(initial=0.0)),
                float(np.finfo(np.float64).tiny))
    return float(np.abs(analytic - numeric).max(initial=0.0) / scale)


def numeric_gradient(network: Network, X: np.ndarray, Y: np.ndarray, loss: str,
                     l2: float = 0.0, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Central differences of the loss for every parameter, in float64 (flat, the network's
    parameter layout). Costs two forward passes per parameter."""
    net = network.copy(np.float64)
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    entry = get_loss(loss)
    out = np.empty(net.n_params)
    params = net.params
    for j in range(net.n_params):
        saved = params[j]
        params[j] = saved + eps
        up = net.loss(X, Y, entry, l2)
        params[j] = saved - eps
        down = net.loss(X, Y, entry, l2)
        params[j] = saved
        out[j] = (up - down) / (2.0 * eps)
    return out


def trace(network: Network, X: np.ndarray, Y: np.ndarray, loss: str, l2: float = 0.0,
          check: bool = False, eps: float = DEFAULT_EPS) -> dict[str, Any]:
    """Forward and backward pass on ``X`` ``(m, n_inputs)``, ``Y`` ``(m, n_outputs)`` at the
    network's weights, in float64. Returns ``{"loss", "l2", "rows", "layers": [...]}`` with
    NumPy arrays (see the module docstring); ``check`` adds numerical gradients."""
    net = network.copy(np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    m = X.shape[0]
    if X.ndim != 2 or X.shape[1] != net.n_inputs or m == 0:
        raise ValueError(f"inputs must have shape (n_samples, {net.n_inputs}), got {X.shape}")
    if Y.shape != (m, net.n_outputs):
        raise ValueError(f"targets must have shape ({m}, {net.n_outputs}), got {Y.shape}")
    entry = get_loss(loss)
    outputs = layer_outputs(net, X)
    a_out = outputs[-1][1]
    value = entry.value(a_out, Y)
    if l2:
        w = net.params[:net.n_weights]
        value += 0.5 * l2 * float(np.vdot(w, w))

    last = len(outputs) - 1
    deltas: list[np.ndarray] = [np.empty(0)] * len(outputs)
    delta = np.empty_like(a_out)
    entry.value_and_delta(a_out, Y, delta)  # dE/da, or dE/dz when fused
    if entry.fused != net.activations[last]:
        _times_derivative(net.activations[last], a_out, delta)
    deltas[last] = delta
    for i in range(last, 0, -1):
        delta = deltas[i] @ net.weights[i].T  # dE/da_{i-1}
        _times_derivative(net.activations[i - 1], outputs[i - 1][1], delta)
        deltas[i - 1] = delta

    layers = []
    for i, (z, a) in enumerate(outputs):
        prev = X if i == 0 else outputs[i - 1][1]
        grad_w = prev.T @ deltas[i]
        if l2:
            grad_w += l2 * net.weights[i]
        layers.append({"layer": i, "activation": net.activations[i],
                       "W": net.weights[i].copy(), "b": net.biases[i].copy(), "z": z, "a": a,
                       "delta": deltas[i], "grad_W": grad_w, "grad_b": deltas[i].sum(axis=0)})
    result: dict[str, Any] = {"loss": value, "l2": l2, "rows": m, "inputs": X,
                              "targets": Y, "layers": layers}
    if check:
        numeric = numeric_gradient(net, X, Y, loss, l2, eps)
        worst = 0.0
        for layer, (ws, bs) in zip(layers, net.slices, strict=True):
            layer["numeric_grad_W"] = numeric[ws].reshape(layer["grad_W"].shape)
            layer["numeric_grad_b"] = numeric[bs]
            layer["relative_error_W"] = _relative_error(layer["grad_W"], layer["numeric_grad_W"])
            layer["relative_error_b"] = _relative_error(layer["grad_b"], layer["numeric_grad_b"])
            worst = max(worst, layer["relative_error_W"], layer["relative_error_b"])
        result["check"] = {"eps": eps, "max_relative_error": worst}
    return result


def _times_derivative(name: str, a: np.ndarray, delta: np.ndarray) -> None:
    """``delta *= f'(z)``, written from the output ``a = f(z)`` (the engine's own rules)."""
    backward = activation(name).backward
    if backward is not None:
        backward(a, delta, np.empty_like(a))
