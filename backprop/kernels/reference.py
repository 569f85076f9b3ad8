"""The NumPy kernel: the reference for the compiled one, and the fallback everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..losses import Loss
    from ..network import Network
    from ..optimizers import Optimizer


class NumpyKernel:
    """Runs batches of an epoch with ``Network.loss_and_grad`` and the optimiser's ``step``."""

    name = "numpy"

    def __init__(self, network: Network, loss: Loss, optimizer: Optimizer, l2: float) -> None:
        self.network, self.loss, self.optimizer, self.l2 = network, loss, optimizer, l2
        self._gather: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _buffers(self, m: int, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Each shuffled batch is gathered into a reused buffer (one for full batches, one for
        # the remainder): no copy of the whole set per epoch, and the batch is still in cache
        # when the network reads it.
        bufs = self._gather.get(m)
        if bufs is None or bufs[0].shape[1] != X.shape[1]:
            if len(self._gather) >= 4:
                self._gather.clear()
            bufs = self._gather[m] = (np.empty((m, X.shape[1]), X.dtype),
                                      np.empty((m, Y.shape[1]), Y.dtype))
        return bufs

    def run(self, X: np.ndarray, Y: np.ndarray, labels: np.ndarray | None,
            perm: np.ndarray | None, first: int, last: int, batch: int, total: float,
            correct: int) -> tuple[float, int]:
        """Train on batches ``first..last-1`` of size ``batch`` (the last may be shorter) of the
        rows ``perm`` (in order when ``None``). ``labels`` (one per row of ``X``) are the
        classes for accuracy, or ``None``. Adds to ``total`` the summed loss (L2 included,
        per row) and to ``correct`` the right guesses; returns both."""
        net, loss, opt, l2 = self.network, self.loss, self.optimizer, self.l2
        params, grads = net.params, net.grads
        binary = net.n_outputs == 1
        n = X.shape[0]
        for k in range(first, last):
            start = k * batch
            stop = min(start + batch, n)
            idx = None
            if perm is not None:
                idx = perm[start:stop]
                xb, yb = self._buffers(idx.shape[0], X, Y)
                np.take(X, idx, axis=0, out=xb)
                np.take(Y, idx, axis=0, out=yb)
            else:
                xb, yb = X[start:stop], Y[start:stop]
            value, out = net.loss_and_grad(xb, yb, loss, l2)
            total += value * xb.shape[0]
            if labels is not None:
                guess = (out[:, 0] > 0.5) if binary else out.argmax(axis=1)
                truth = labels[start:stop] if idx is None else labels[idx]
                correct += int(np.count_nonzero(guess == truth))
            opt.step(params, grads)
        return total, correct
