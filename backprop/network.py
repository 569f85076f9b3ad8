"""Dense feed-forward networks over one flat parameter array.

All weights come first in ``params`` (layer by layer, each ``(fan_in, fan_out)`` row-major), then
all biases. Layers hold views into it, and ``grads`` has the same layout, so an optimiser step or
an L2 penalty is a handful of vector operations whatever the depth.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from .activations import activation
from .initializers import DEFAULT_UNIFORM_SCALE, initializer
from .losses import Loss
from .losses import loss as get_loss
from .spec import count_parameters, resolve_network


@dataclass
class _Buffers:
    """Per-batch-size work arrays, allocated once and reused every batch."""

    acts: list[np.ndarray]
    deltas: list[np.ndarray]
    tmps: list[np.ndarray]


class Network:
    """A multi-layer perceptron.

    ``network_spec`` is the ``network`` part of a spec (see ``backprop.spec``); ``n_inputs`` is the
    input width. Parameters start at zero: call ``initialize(rng)`` or assign ``params``.
    """

    def __init__(self, network_spec: dict[str, Any], n_inputs: int | None = None,
                 dtype: str | np.dtype = "float32") -> None:
        if n_inputs is None:
            n_inputs = network_spec.get("inputs")
        if n_inputs is None:
            raise ValueError("the input width is unknown: give n_inputs or network.inputs")
        self.spec = resolve_network(network_spec, n_inputs=n_inputs)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.n_inputs = int(n_inputs)
        self.units = [layer["units"] for layer in self.spec["layers"]]
        self.activations = [layer["activation"] for layer in self.spec["layers"]]
        sizes = [self.n_inputs, *self.units]
        self.shapes = list(itertools.pairwise(sizes))
        self.n_weights = sum(a * b for a, b in self.shapes)
        self.n_params = count_parameters(self.n_inputs, self.units)
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self.grads = np.zeros_like(self.params)
        self.slices = self._slices()
        self.weights, self.biases = self._views(self.params)
        self.weight_grads, self.bias_grads = self._views(self.grads)
        self._forward = [activation(name).forward for name in self.activations]
        self._backward = [activation(name).backward for name in self.activations]
        self._buffers: dict[int, _Buffers] = {}
        self._l2_scratch: np.ndarray | None = None

    def _slices(self) -> list[tuple[slice, slice]]:
        """Per layer, where its weights and its biases sit in the flat array."""
        out = []
        w_off, b_off = 0, self.n_weights
        for fan_in, fan_out in self.shapes:
            out.append((slice(w_off, w_off + fan_in * fan_out), slice(b_off, b_off + fan_out)))
            w_off += fan_in * fan_out
            b_off += fan_out
        return out

    def _views(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        weights = [flat[w].reshape(shape) for (w, _), shape in zip(self.slices, self.shapes,
                                                                    strict=True)]
        return weights, [flat[b] for _, b in self.slices]

    @property
    def n_outputs(self) -> int:
        return self.units[-1]

    def layer_names(self) -> list[str]:
        return [f"layer{i}" for i in range(len(self.units))]

    def initialize(self, rng: np.random.Generator) -> None:
        """Random weights by each layer's initialiser, zero biases."""
        scale = self.spec.get("init_scale", DEFAULT_UNIFORM_SCALE)
        for layer, w, b, (fan_in, fan_out) in zip(self.spec["layers"], self.weights,
                                                  self.biases, self.shapes, strict=True):
            w[...] = initializer(layer["init"])(rng, fan_in, fan_out, scale)
            b[...] = 0.0

    def copy(self, dtype: str | np.dtype | None = None) -> Network:
        """An independent network with the same parameters (cast to ``dtype`` if given)."""
        other = Network(self.spec, self.n_inputs, self.dtype if dtype is None else dtype)
        other.params[...] = self.params
        return other

    # -- forward -------------------------------------------------------------------------------

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs ``(n_samples, n_outputs)`` for inputs ``(n_samples, n_inputs)``.

        Allocates its own arrays (no shared buffers), so concurrent calls are safe.
        """
        a = np.asarray(X, dtype=self.dtype)
        if a.ndim != 2 or a.shape[1] != self.n_inputs:
            raise ValueError(f"inputs must have shape (n_samples, {self.n_inputs}), "
                             f"got {a.shape}")
        for w, b, f in zip(self.weights, self.biases, self._forward, strict=True):
            a = a @ w
            a += b
            if f is not None:
                f(a)
        return a

    def loss(self, X: np.ndarray, Y: np.ndarray, loss: str | Loss, l2: float = 0.0) -> float:
        """Mean loss over samples, plus ``l2/2 * sum(weights**2)``."""
        entry = get_loss(loss) if isinstance(loss, str) else loss
        value = entry.value(self.forward(X), np.asarray(Y, dtype=self.dtype))
        if l2:
            w = self.params[:self.n_weights]
            value += 0.5 * l2 * float(np.vdot(w, w))
        return value

    # -- backward ------------------------------------------------------------------------------

    def _buffers_for(self, m: int) -> _Buffers:
        bufs = self._buffers.get(m)
        if bufs is None:
            if len(self._buffers) >= 4:  # training uses at most two sizes (full and remainder)
                self._buffers.clear()
            new = [[np.empty((m, u), dtype=self.dtype) for u in self.units] for _ in range(3)]
            bufs = self._buffers[m] = _Buffers(*new)
        return bufs

    def loss_and_grad(self, X: np.ndarray, Y: np.ndarray, loss: Loss, l2: float = 0.0,
                      ) -> tuple[float, np.ndarray]:
        """Backpropagation: fill ``self.grads`` with d(loss)/d(params) on the batch ``X, Y``.

        ``X`` is ``(m, n_inputs)`` and ``Y`` is ``(m, n_outputs)``, both of the network's dtype.
        Returns the batch loss (including the L2 term when ``l2`` > 0) and the network's
        outputs ``(m, n_outputs)`` (a reused buffer: valid until the next call).
        """
        bufs = self._buffers_for(X.shape[0])
        acts, deltas, tmps = bufs.acts, bufs.deltas, bufs.tmps
        a = X
        for w, b, f, out in zip(self.weights, self.biases, self._forward, acts, strict=False):
            np.matmul(a, w, out=out)
            out += b
            if f is not None:
                f(out)
            a = out
        last = len(acts) - 1
        delta = deltas[last]
        value = loss.value_and_delta(a, Y, delta)
        back = self._backward[last]
        if back is not None and loss.fused != self.activations[last]:
            back(a, delta, tmps[last])
        weights, gw, gb, backward = self.weights, self.weight_grads, self.bias_grads, \
            self._backward
        for i in range(last, 0, -1):
            prev = acts[i - 1]
            np.matmul(prev.T, delta, out=gw[i])
            np.add.reduce(delta, axis=0, out=gb[i])
            d = deltas[i - 1]
            np.matmul(delta, weights[i].T, out=d)
            back = backward[i - 1]
            if back is not None:
                back(prev, d, tmps[i - 1])
            delta = d
        np.matmul(X.T, delta, out=gw[0])
        np.add.reduce(delta, axis=0, out=gb[0])
        if l2:
            w, g = self.params[:self.n_weights], self.grads[:self.n_weights]
            if self._l2_scratch is None:
                self._l2_scratch = np.empty_like(w)
            np.multiply(w, l2, out=self._l2_scratch)
            g += self._l2_scratch
            value += 0.5 * l2 * float(np.vdot(w, w))
        return value, a

    # -- spec --------------------------------------------------------------------------------

    def __repr__(self) -> str:
        arch = "-".join(str(u) for u in [self.n_inputs, *self.units])
        return f"Network({arch}, {'/'.join(self.activations)}, {self.dtype})"
