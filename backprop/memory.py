"""How much memory training a spec on a dataset takes at its peak, before any of it is allocated.

The figure follows what ``backprop.train`` and ``Trainer.fit`` really hold at once during an
epoch that ends with a checkpoint: the dataset (float64, as loaded) and its training-dtype
copies (scaled inputs and encoded targets, then the training and validation rows), the shuffle
buffers, parameters and gradients, the optimiser's state, the start-of-epoch and best weights,
the per-layer buffers of each batch size (forward outputs, derivatives, deltas), the validation
forward pass, and a checkpoint being serialised. It is an estimate (temporaries of NumPy and
the allocator's slack come on top), meant to refuse jobs that cannot fit, with the part to blame.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .spec import count_parameters

# Arrays of the parameters' size each optimiser keeps (a scratch buffer included).
OPTIMIZER_ARRAYS = {"sgd": 1, "adagrad": 2, "rmsprop": 2, "adam": 3, "rprop": 3}


def estimate_training_memory(spec: dict[str, Any], rows: int) -> dict[str, int]:
    """Bytes by part for a resolved ``spec`` on ``rows`` rows; ``"total"`` is their sum.

    The parts: ``dataset``, ``training_copies``, ``batch_buffers``, ``validation_pass``,
    ``parameters`` (weights, gradients, optimiser state, saved weights) and ``checkpoint``.
    """
    net, cfg = spec["network"], spec["training"]
    units = [layer["units"] for layer in net["layers"]]
    f, o = int(net["inputs"]), units[-1]
    d = np.dtype(cfg["dtype"]).itemsize
    n_val = round(rows * cfg["validation_split"]) if cfg["validation_split"] > 0 else 0
    n_tr = max(rows - n_val, 1)
    b = n_tr if cfg["batch_size"] == "full" else min(int(cfg["batch_size"]), n_tr)
    rest = n_tr % b
    sizes = b + rest  # rows of the (up to two) batch sizes whose buffers are kept
    width = sum(units)
    p = count_parameters(f, units)

    opt = cfg["optimizer"]
    n_opt = OPTIMIZER_ARRAYS.get(opt["name"], 3)
    if opt["name"] == "sgd" and opt.get("momentum"):
        n_opt += 1  # velocity
    n_weights = 2 + 1 + (1 if cfg.get("early_stopping") else 0)  # params, grads, last good, best
    saved = 1 + (n_opt - 1) + (1 if cfg.get("early_stopping") else 0)  # in a checkpoint
    pairs = [a + c for a, c in itertools.pairwise([f, *units])]

    parts = {
        "dataset": 8 * rows * (f + o),
        "training_copies": d * (rows + n_tr + n_val) * (f + o) + 8 * n_tr,
        "batch_buffers": d * sizes * (3 * width + 2 * (f + o)),
        "validation_pass": d * n_val * max(pairs) if n_val else 0,
        "parameters": d * p * (n_weights + n_opt + (1 if cfg.get("l2") else 0)),
        "checkpoint": 2 * d * p * saved,
    }
    parts["total"] = sum(parts.values())
    return parts


def largest_batch(spec: dict[str, Any], rows: int, budget: int) -> int:
    """The largest ``batch_size`` whose estimate fits ``budget`` (0 if none does)."""
    lo, hi = 0, max(rows, 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        trial = {**spec, "training": {**spec["training"], "batch_size": mid}}
        if estimate_training_memory(trial, rows)["total"] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
