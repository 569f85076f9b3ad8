"""Training kernels: the code that runs the batches of an epoch, behind one interface.

- ``numpy``: ``Network.loss_and_grad`` and the optimiser's ``step`` (the reference; always there).
- ``compiled``: the same maths compiled with numba (``pip install 'backprop-service[fast]'``):
  forward, backward, every loss x output pairing, every optimiser, L2, over the same flat
  parameter array and the same shuffled order. numba is imported only when it is used.

A kernel has ``run(X, Y, labels, perm, first, last, batch, total, correct)``; see
``NumpyKernel.run``. ``choose`` turns the spec's ``training.kernel`` (``auto``, ``numpy`` or
``compiled``) into the kernel a run uses (``AUTO_RULE`` says when ``auto`` compiles).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from . import cache

if TYPE_CHECKING:
    from ..network import Network
    from ..optimizers import Optimizer

KERNELS = ("auto", "numpy", "compiled")
log = logging.getLogger(__name__)

# Read off `python bench/kernels.py` on this machine (bench/README.md, "Compiled kernel"): the
# compiled kernel wins 13-78x online (batch 1) from 259 to 235k weights, and wins at larger
# batches while batch x weights stays under ~160k (x1.4-19: 13-16-3 up to batch 256, 64-32-10 up
# to batch 64); past that BLAS wins (64-32-10 batch 128: x0.88; 784-256-128-10 batch 8: x0.85).
AUTO_MAX_WORK = 160_000  # batch rows x weights
AUTO_MAX_ONLINE_WEIGHTS = 1 << 20  # online: measured up to 235k weights, trusted to ~1M
AUTO_RULE = (f"compiled when numba is installed and batch_size x weights <= {AUTO_MAX_WORK:,}, "
             f"or batch_size is 1 and weights <= {AUTO_MAX_ONLINE_WEIGHTS:,}; numpy otherwise "
             "(a full batch counts its rows)")


def available() -> bool:
    """Whether numba is installed (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def missing_reason() -> str:
    return ("the compiled kernel needs numba, which is not installed "
            "(pip install 'backprop-service[fast]'); use kernel 'numpy' or 'auto'")


def choose(kernel: str, n_weights: int, batch_size: int | str,
           n_rows: int | None = None) -> str:
    """``numpy`` or ``compiled`` for a spec's ``kernel``. ``batch_size`` is the spec's (an integer
    or ``"full"``; ``n_rows`` training rows, when known, size a full batch). Raises
    ``ValueError`` for ``compiled`` without numba."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {list(KERNELS)}")
    if kernel == "numpy":
        return kernel
    if kernel == "compiled":
        if not available():
            raise ValueError(missing_reason())
        return kernel
    if not available():
        return "numpy"
    rows = n_rows if batch_size == "full" else batch_size
    if rows is None:
        return "numpy"
    if n_rows is not None:
        rows = min(int(rows), n_rows)
    pays = rows * n_weights <= AUTO_MAX_WORK or (rows == 1 and n_weights <= AUTO_MAX_ONLINE_WEIGHTS)
    return "compiled" if pays else "numpy"


def make(kernel: str, network: Network, loss: str, optimizer: Optimizer, l2: float) -> Any:
    """The kernel object for ``numpy`` or ``compiled`` (``ValueError`` when numba is missing or
    fails to load)."""
    if kernel == "numpy":
        from ..losses import loss as get_loss
        from .reference import NumpyKernel
        return NumpyKernel(network, get_loss(loss), optimizer, l2)
    if kernel != "compiled":
        raise ValueError(f"kernel must be 'numpy' or 'compiled' here, got {kernel!r}")
    return _compiled_module().CompiledKernel(network, loss, optimizer, l2)


def step_function(kernel: str) -> Any:
    """``f(optimizer, params, grads)``: one optimiser step as ``kernel`` does it."""
    if kernel == "numpy":
        return lambda opt, params, grads: opt.step(params, grads)
    return _compiled_module().step


def _compiled_module() -> Any:
    if not available():
        raise ValueError(missing_reason())
    cache.configure()
    try:
        from . import compiled
    except ImportError as exc:  # numba present but broken (e.g. a mismatched llvmlite)
        raise ValueError(f"the compiled kernel could not load numba: {exc}") from None
    return compiled


_warm = threading.Event()


def warm_up(cache_dir: str | os.PathLike[str] | None = None, *, background: bool = True,
            ) -> threading.Thread | None:
    """Compile (or load from the cache) the compiled kernel's entry points for float32 and
    float64, so that no job pays for it. ``cache_dir`` is where compiled code goes unless
    ``NUMBA_CACHE_DIR`` is set. Does nothing without numba. With ``background`` it returns the
    thread doing it (a job that starts meanwhile waits on numba's compile lock)."""
    if not available():
        return None
    cache.configure(cache_dir)
    if not background:
        _warm_now()
        return None
    thread = threading.Thread(target=_warm_now, name="kernel-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_now() -> None:
    import time

    import numpy as np

    from ..network import Network
    from ..optimizers import SGD

    t0 = time.perf_counter()
    try:
        mod = _compiled_module()
        for dtype in ("float32", "float64"):
            net = Network({"layers": [{"units": 2, "activation": "tanh"},
                                      {"units": 1, "activation": "sigmoid"}]}, 2, dtype)
            net.initialize(np.random.default_rng(0))
            k = mod.CompiledKernel(net, "mse", SGD(0.1), 0.0)
            X = np.zeros((2, 2), dtype)
            Y = X[:, :1].copy()
            k.run(X, Y, np.zeros(2, bool), np.arange(2), 0, 1, 2, 0.0, 0)
            k.run_epochs(X, Y, np.zeros(2, bool), np.arange(2).reshape(1, 2), [0.1], 1)
            mod.step(SGD(0.1), net.params, net.grads)
    except Exception:
        log.exception("compiled kernel: warm-up failed; jobs asking for it will fail")
        return
    _warm.set()
    log.info("compiled kernel ready in %.2f s (cache: %s)", time.perf_counter() - t0,
             cache.directory())
