"""Numerical gradient check: backprop against central differences, in float64."""

from __future__ import annotations

import numpy as np

from . import kernels
from .losses import loss as get_loss
from .network import Network


def gradient_check(network: Network, X: np.ndarray, Y: np.ndarray, loss: str, l2: float = 0.0,
                   eps: float = 1e-6, max_checks_per_layer: int | None = None,
                   rng: np.random.Generator | None = None,
                   kernel: str = "numpy") -> dict[str, float]:
    """Maximum relative error of the backpropagated gradient, per layer.

    Works on a float64 copy of ``network`` with inputs ``X`` ``(n_samples, n_inputs)`` and targets
    ``Y`` ``(n_samples, n_outputs)``. For each layer (weights and bias together) the error is
    ``max|analytic - numeric| / max(max|analytic|, max|numeric|)``; the numeric gradient is
    ``(L(p + eps) - L(p - eps)) / (2 eps)``. ``max_checks_per_layer`` samples that many parameters
    per layer at random (all when ``None``), to keep the check cheap on large networks.
    ``kernel`` (``numpy`` or ``compiled``) computes the analytic gradient; the numeric one always
    comes from the NumPy forward pass.
    """
    net = network.copy(np.float64)
    X = np.ascontiguousarray(X, dtype=np.float64)
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    entry = get_loss(loss)
    if kernel == "numpy":
        net.loss_and_grad(X, Y, entry, l2)
    else:
        kernels.make(kernel, net, loss, None, l2).loss_and_grad(X, Y)
    analytic = net.grads.copy()
    rng = rng or np.random.default_rng(0)
    errors: dict[str, float] = {}
    for name, (w, b) in zip(net.layer_names(), net.slices, strict=True):
        flat = np.concatenate([np.arange(w.start, w.stop), np.arange(b.start, b.stop)])
        if max_checks_per_layer is not None and flat.size > max_checks_per_layer:
            flat = rng.choice(flat, size=max_checks_per_layer, replace=False)
        numeric = np.empty(flat.size)
        for k, j in enumerate(flat):
            saved = net.params[j]
            net.params[j] = saved + eps
            up = net.loss(X, Y, entry, l2)
            net.params[j] = saved - eps
            down = net.loss(X, Y, entry, l2)
            net.params[j] = saved
            numeric[k] = (up - down) / (2.0 * eps)
        a = analytic[flat]
        scale = max(np.abs(a).max(), np.abs(numeric).max(), np.finfo(np.float64).tiny)
        errors[name] = float(np.abs(a - numeric).max() / scale)
    return errors

