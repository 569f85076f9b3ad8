"""The compiled kernel: plumbing between the trainer's objects and ``jit.run_batches``.

Importing this module imports numba (and compiles or loads the kernel on first use), so only
``backprop.kernels`` imports it, lazily. It keeps the optimiser's own state arrays (so
checkpoints, ``get_state`` and ``set_state`` are the NumPy optimisers' own) and fills the
network's ``grads`` like ``Network.loss_and_grad``.
"""

from __future__ import annotations

import numpy as np

from ..activations import LEAKY_SLOPE
from ..losses import _EPS32
from ..losses import loss as get_loss
from ..network import Network
from ..optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop, Rprop
from . import jit

ACTIVATION_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3, "leaky_relu": 4,
                    "softmax": 5}
LOSS_CODES = {"mse": 0, "binary_cross_entropy": 1, "cross_entropy": 2}
_NO_LABELS = np.empty(0, dtype=np.int64)


def _labels(labels: np.ndarray | None) -> np.ndarray:
    return _NO_LABELS if labels is None else labels.astype(np.int64, copy=False)


def _hyper(opt: Optimizer | None) -> tuple[int, list[float]]:
    """The optimiser's code and its hyper-parameters in ``jit._update``'s order."""
    if opt is None:
        return 0, [0.0]
    if isinstance(opt, SGD):
        return 1, [opt.learning_rate, opt.momentum, float(opt.nesterov)]
    if isinstance(opt, Adagrad):
        return 2, [opt.learning_rate, opt.epsilon]
    if isinstance(opt, RMSprop):
        return 3, [opt.learning_rate, opt.epsilon, opt.rho, 1.0 - opt.rho]
    if isinstance(opt, Adam):
        return 4, [opt.learning_rate, opt.epsilon, opt.beta1, opt.beta2, 1.0 - opt.beta1,
                   1.0 - opt.beta2]
    if isinstance(opt, Rprop):
        return 5, [opt.learning_rate, opt.eta_plus, opt.eta_minus, opt.step_min, opt.step_max]
    raise ValueError(f"the compiled kernel does not cover optimizer {opt.name!r}")


def _state(opt: Optimizer | None, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The optimiser's state arrays, built as its first ``step`` would build them."""
    empty = params[:0]
    if isinstance(opt, SGD) and opt.momentum != 0.0:
        if opt.velocity is None:
            opt.velocity = np.zeros_like(params)
        return opt.velocity, empty
    if isinstance(opt, Adagrad):
        if opt.accumulator is None:
            opt.accumulator = np.zeros_like(params)
            opt._build(params)
        return opt.accumulator, empty
    if isinstance(opt, RMSprop):
        if opt.mean_square is None:
            opt.mean_square = np.zeros_like(params)
            opt._build(params)
        return opt.mean_square, empty
    if isinstance(opt, Adam):
        if opt.m is None:
            opt.m, opt.v = np.zeros_like(params), np.zeros_like(params)
            opt._build(params)
        return opt.m, opt.v
    if isinstance(opt, Rprop):
        if opt.steps is None:
            opt.steps = np.full_like(params, opt.learning_rate)
            opt.prev_grads = np.zeros_like(params)
            opt._build(params)
        return opt.steps, opt.prev_grads
    return empty, empty


class CompiledKernel:
    """Runs batches of an epoch in compiled code; the same contract as ``NumpyKernel``."""

    name = "compiled"

    def __init__(self, network: Network, loss: str, optimizer: Optimizer | None,
                 l2: float) -> None:
        self.network, self.optimizer, self.l2 = network, optimizer, float(l2)
        self.loss_code = LOSS_CODES[loss]
        self.fused = int(get_loss(loss).fused == network.activations[-1])
        self.eps = _EPS32 if network.dtype == np.float32 else 1e-15
        dtype = network.dtype
        self.k = np.array([0.5, 1.0, LEAKY_SLOPE, 0.0], dtype=dtype)
        self.sc = np.zeros(4, dtype=dtype)
        offsets = np.cumsum([0, *network.units[:-1]])
        self.layout = np.array(
            [[fi, fo, w.start, b.start, ACTIVATION_CODES[act], off]
             for (fi, fo), (w, b), act, off in zip(network.shapes, network.slices,
                                                    network.activations, offsets, strict=True)],
            dtype=np.uint64)
        self._batch = 0
        self.last_good: np.ndarray | None = None

    def _buffers(self, batch: int) -> None:
        if batch == self._batch:
            return
        net = self.network
        total = sum(net.units)
        self.acts = np.zeros(batch * total, dtype=net.dtype)
        self.deltas = np.zeros_like(self.acts)
        self.idx = np.zeros(batch, dtype=np.uint64)
        self.rows = np.zeros((len(net.units), batch), dtype=np.uint64)
        lay = self.layout
        for layer in range(1, len(net.units)):  # inputs of the hidden layers: fixed places
            self.rows[layer] = batch * lay[layer - 1, 5] + \
                np.arange(batch, dtype=np.uint64) * lay[layer - 1, 1]
        self.lay = lay.copy()
        self.lay[:, 5] *= batch  # activation offsets scale with the batch size
        self._batch = batch

    def run(self, X: np.ndarray, Y: np.ndarray, labels: np.ndarray | None,
            perm: np.ndarray | None, first: int, last: int, batch: int, total: float,
            correct: int) -> tuple[float, int]:
        """Train on batches ``first..last-1``; see ``NumpyKernel.run``."""
        net, opt = self.network, self.optimizer
        self._buffers(batch)
        if perm is None:
            perm = np.arange(X.shape[0], dtype=np.int64)
        code, hyper = _hyper(opt)
        s1, s2 = _state(opt, net.params)
        t = opt.t if isinstance(opt, Adam) else 0
        total, correct, t = jit.run_batches(
            X, Y, _labels(labels), perm, first, last, batch, net.params, net.grads, self.lay,
            net.n_weights, self.acts, self.deltas, self.rows, self.idx, self.loss_code,
            self.fused, self.eps, self.l2, code, np.array(hyper, dtype=net.dtype),
            np.array(hyper), self.k, self.sc, s1, s2, t, float(total), int(correct))
        if isinstance(opt, Adam):
            opt.t = int(t)
        return float(total), int(correct)

    def run_epochs(self, X: np.ndarray, Y: np.ndarray, labels: np.ndarray | None,
                   perms: np.ndarray | None, rates: np.ndarray, batch: int,
                   ) -> tuple[np.ndarray, np.ndarray, int]:
        """``len(rates)`` whole epochs in one call (rows in the order ``perms[e]``, in order
        when ``None``; rate ``rates[e]``). Returns per-epoch summed losses, correct guesses,
        and how many epochs finished before one diverged (``last_good`` then holds the
        weights from before that one)."""
        net, opt = self.network, self.optimizer
        self._buffers(batch)
        n, count = X.shape[0], len(rates)
        batches = -(-n // batch)
        shuffled = perms is not None
        if perms is None:
            perms = np.arange(n, dtype=np.int64).reshape(1, n)
        if self.last_good is None:
            self.last_good = np.empty_like(net.params)
        code, hyper = _hyper(opt)
        s1, s2 = _state(opt, net.params)
        t = opt.t if isinstance(opt, Adam) else 0
        totals, corrects = np.zeros(count), np.zeros(count, dtype=np.int64)
        done, t = jit.run_epochs(
            X, Y, _labels(labels), perms, shuffled, np.asarray(rates, dtype=np.float64), count,
            batch, batches, net.params, net.grads, self.lay, net.n_weights, self.acts,
            self.deltas, self.rows, self.idx, self.loss_code, self.fused, self.eps, self.l2,
            code, np.array(hyper, dtype=net.dtype), np.array(hyper), self.k, self.sc, s1, s2,
            t, self.last_good, totals, corrects)
        if isinstance(opt, Adam):
            opt.t = int(t)
        return totals, corrects, int(done)

    def loss_and_grad(self, X: np.ndarray, Y: np.ndarray) -> float:
        """Fill ``network.grads`` for the batch ``X, Y`` (in order); return its mean loss."""
        n = X.shape[0]
        saved, self.optimizer = self.optimizer, None
        try:
            total, _ = self.run(np.ascontiguousarray(X, self.network.dtype),
                                np.ascontiguousarray(Y, self.network.dtype),
                                None, None, 0, 1, n, 0.0, 0)
        finally:
            self.optimizer = saved
        return total / n


def step(opt: Optimizer, params: np.ndarray, grads: np.ndarray) -> None:
    """One compiled optimiser step on ``params`` (in place) and ``opt``'s own state: what
    ``opt.step(params, grads)`` does, through ``jit._update``."""
    code, hyper = _hyper(opt)
    s1, s2 = _state(opt, params)
    t = opt.t if isinstance(opt, Adam) else 0
    t = jit._update(params, grads, s1, s2, code, np.array(hyper, dtype=params.dtype),
                    np.array(hyper), np.zeros(4, dtype=params.dtype), t)
    if isinstance(opt, Adam):
        opt.t = int(t)
