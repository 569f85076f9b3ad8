"""The machine side of ``bench/engine.py``: glibc malloc tuning (freed memory kept in the
process), the matmul ceiling at a configuration's exact shapes, and the stall probe."""

from __future__ import annotations

import ctypes
import itertools
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
from trainers import Config

PROBE_SIZE = 256  # the probe is a PROBE_SIZE^3 float32 matmul
PROBE_SLOW = 2.5  # a probe this many times slower than the block's best means a stall
CEILING_SECONDS = 0.25  # matmul timing per repeat (split over the step's matmuls)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)


def tune_malloc() -> bool:
    """Keep freed memory in the process: every allocation from the heap (``M_MMAP_MAX`` 0),
    never trimmed (``M_TRIM_THRESHOLD`` 2 GiB). glibc only; returns whether it applied.

    On this VM (Firecracker, virtio-balloon free-page reporting, DAMON) memory a process gives
    back goes to the host within a fraction of a second, and touching fresh memory costs up to
    ~4 ms per MB instead of ~0.1 ms. The engine allocates a shuffled copy of the training set
    per ``fit`` call (190 MB on B), so without this every timed repeat of B would pay up to
    ~0.7 s to the host, not to the engine. It applies to every library alike; ``--no-malloc-tuning``
    shows the raw effect. On bare metal a fresh 190 MB buffer costs ~25 ms of page zeroing,
    which this hides from the engine's B figure (~3%).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def fresh_memory_ms(nbytes: int, idle: float = 2.0) -> float:
    """Milliseconds to allocate and touch ``nbytes`` after ``idle`` seconds (the VM effect)."""
    buf = np.empty(nbytes, np.uint8)
    buf.fill(0)
    del buf
    time.sleep(idle)
    t0 = time.perf_counter()
    buf = np.empty(nbytes, np.uint8)
    buf.fill(1)
    elapsed = time.perf_counter() - t0
    del buf
    return elapsed * 1e3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- matmul ceiling and probe -------------------------------------------------------------------


@dataclass
class _Matmul:
    a: np.ndarray
    b: np.ndarray
    out: np.ndarray
    flops: int
    needed: bool  # the engine computes it (not dA for the first layer: inputs need no gradient)
    iters: int = 1


class MatmulCeiling:
    """The three float32 matmuls per layer of one training step, at the exact shapes and
    memory layouts the engine uses (transposes as views), timed one by one in NumPy."""

    name = "ceiling"

    def __init__(self, cfg: Config, batch: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)

        def arr(*shape: int) -> np.ndarray:
            return rng.standard_normal(shape, dtype=np.float32)

        self.batch = batch
        self.ops: list[_Matmul] = []
        for i, (k, n) in enumerate(itertools.pairwise(cfg.sizes)):
            A, W, D = arr(batch, k), arr(k, n), arr(batch, n)
            f = 2 * batch * k * n
            self.ops.append(_Matmul(A, W, np.empty((batch, n), np.float32), f, True))
            self.ops.append(_Matmul(A.T, D, np.empty((k, n), np.float32), f, True))
            self.ops.append(_Matmul(D, W.T, np.empty((batch, k), np.float32), f, i > 0))
        self.flops = sum(op.flops for op in self.ops)  # = 6 * weights * batch

    def calibrate(self) -> None:
        budget = CEILING_SECONDS / len(self.ops)
        for op in self.ops:
            op.iters = 1
            while True:
                t = self._time(op)
                if t * op.iters >= budget / 4 or op.iters >= 1 << 20:
                    break
                op.iters *= 4
            op.iters = max(1, int(op.iters * budget / max(t * op.iters, 1e-9)))

    @staticmethod
    def _time(op: _Matmul) -> float:
        matmul, a, b, out = np.matmul, op.a, op.b, op.out
        t0 = time.perf_counter()
        for _ in range(op.iters):
            matmul(a, b, out=out)
        return (time.perf_counter() - t0) / op.iters

    def run(self) -> tuple[float, float]:
        """Seconds per step: all 3 x layers matmuls, and those the engine needs."""
        times = [self._time(op) for op in self.ops]
        needed = sum(t for t, op in zip(times, self.ops, strict=True) if op.needed)
        return sum(times), needed


class Probe:
    """A small matmul timed before each repeat; much slower than its best means a stall."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.a = rng.standard_normal((PROBE_SIZE, PROBE_SIZE), dtype=np.float32)
        self.b = rng.standard_normal((PROBE_SIZE, PROBE_SIZE), dtype=np.float32)
        self.out = np.empty_like(self.a)
        self.best = math.inf

    def time(self) -> float:
        best = math.inf
        for _ in range(5):
            t0 = time.perf_counter()
            np.matmul(self.a, self.b, out=self.out)
            best = min(best, time.perf_counter() - t0)
        self.best = min(self.best, best)
        return best

    def calibrate(self) -> None:
        for _ in range(10):
            self.time()

    def wait_until_quiet(self, max_wait: float) -> tuple[float, float]:
        """Probe; while it is slow, pause and probe again (up to ``max_wait`` seconds).
        Returns (last probe / best probe, seconds waited)."""
        waited = 0.0
        t = self.time()
        while t > PROBE_SLOW * self.best and waited < max_wait:
            time.sleep(0.5)
            waited += 0.5
            t = self.time()
        return t / self.best, waited


# -- one configuration at one thread count --------------------------------------------------
