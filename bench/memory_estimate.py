"""The memory budget's estimate against the peak RSS that training really reaches.

Trains a 10-512-512-1 network (Adam, validation 10 %, a checkpoint every epoch) in a fresh
process per case and prints ``backprop.estimate_training_memory`` (without the dataset, which
is loaded before the measurement starts) beside the growth of the peak RSS (``ru_maxrss``).

    .venv/bin/python bench/memory_estimate.py
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [(100_000, "full"), (200_000, "full"), (200_000, "256"), (50_000, "4096")]


def one(rows: int, batch: str) -> None:
    import numpy as np

    import backprop

    X = np.random.default_rng(0).normal(size=(rows, 10))
    y = X[:, :1].copy()
    spec = {"network": {"layers": [{"units": 512}, {"units": 512}, {"units": 1}]},
            "training": {"batch_size": batch if batch == "full" else int(batch), "epochs": 2,
                         "validation_split": 0.1, "optimizer": {"name": "adam"}, "seed": 0}}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = backprop.train(spec, X, y, callback=lambda p: (p.checkpoint(), None)[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    est = backprop.estimate_training_memory(model.spec, rows)
    without = (est["total"] - est["dataset"]) / 2**20
    print(f"{rows:>8} rows, batch {batch:>5}: estimate {without:7.0f} MiB, "
          f"measured {(peak - base) / 1024:7.0f} MiB, ratio {(peak - base) / 1024 / without:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        one(int(sys.argv[1]), sys.argv[2])
    else:
        for rows, batch in CASES:
            subprocess.run([sys.executable, __file__, str(rows), batch], cwd=ROOT, check=True)
