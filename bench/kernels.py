#!/usr/bin/env python
"""The compiled kernel's costs and where it pays, in one run (``training.kernel``).

1. Where it pays: epoch time of the NumPy and the compiled kernel, side by side (alternating,
   median of per-repeat ratios), over a grid of layer widths x batch sizes; the ``auto`` rule in
   ``backprop/kernels/__init__.py`` is read off this table.
2. Start-up: a fresh process that warms the kernel (``kernels.warm_up``) with an empty cache
   (cold: compile) and again with that cache (warm: load), and ``import numba`` alone.
3. Install size: what numba and llvmlite occupy in site-packages.

    python bench/kernels.py                  # ~3 minutes
    python bench/kernels.py --quick          # smoke run
    python bench/kernels.py --skip-grid      # start-up and size only
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import backprop  # noqa: E402
from backprop import kernels  # noqa: E402

# (name, sizes, rows): digits-, wine- and MNIST-shaped networks on random data
NETS = [("13-16-3", (13, 16, 3), 178), ("64-32-10", (64, 32, 10), 1797),
        ("64-128-10", (64, 128, 10), 1797), ("784-256-128-10", (784, 256, 128, 10), 2048)]
BATCHES = [1, 8, 32, 64, 128, 256]


def trainer(sizes: tuple[int, ...], rows: int, batch: int, kernel: str) -> Any:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    Y = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], rows)]
    layers = [{"units": u, "activation": "relu"} for u in sizes[1:-1]]
    layers.append({"units": sizes[-1], "activation": "softmax"})
    spec = backprop.resolve_spec(
        {"network": {"layers": layers},
         "training": {"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
                      "batch_size": batch, "epochs": 1, "seed": 0, "kernel": kernel}},
        n_inputs=sizes[0])
    net = backprop.Network(spec["network"], sizes[0], "float32")
    net.initialize(rng)
    t = backprop.Trainer(net, spec["training"])
    return t, X, Y


def epoch_seconds(t: Any, X: np.ndarray, Y: np.ndarray, epochs: int) -> float:
    t.config = {**t.config, "epochs": t.epoch + epochs}
    t0 = time.perf_counter()
    t.fit(X, Y)
    return (time.perf_counter() - t0) / epochs


def grid(quick: bool, repeats: int) -> list[dict[str, Any]]:
    out = []
    with threadpool_limits(1):
        for name, sizes, rows in NETS:
            for batch in BATCHES:
                weights = sum(a * b for a, b in itertools.pairwise(sizes))
                runs = {k: trainer(sizes, rows, batch, k) for k in ("numpy", "compiled")}
                probe = {k: epoch_seconds(*runs[k], 1) for k in runs}  # warm, and sizes epochs
                epochs = max(1, int(0.3 / max(probe.values()))) if not quick else 1
                ratios, times = [], {k: [] for k in runs}
                for r in range(repeats):
                    order = list(runs) if r % 2 == 0 else list(runs)[::-1]
                    got = {k: epoch_seconds(*runs[k], epochs) for k in order}
                    for k, v in got.items():
                        times[k].append(v)
                    ratios.append(got["numpy"] / got["compiled"])
                row = {"net": name, "batch": batch, "weights": weights,
                       "batch_x_weights": batch * weights,
                       "numpy_ms": statistics.median(times["numpy"]) * 1e3,
                       "compiled_ms": statistics.median(times["compiled"]) * 1e3,
                       "compiled_over_numpy": statistics.median(ratios),
                       "auto": kernels.choose("auto", weights, batch, rows)}
                out.append(row)
                print(f"{name:>16} b{batch:<4} numpy {row['numpy_ms']:9.2f} ms  compiled "
                      f"{row['compiled_ms']:9.2f} ms  x{row['compiled_over_numpy']:6.2f}  "
                      f"auto -> {row['auto']}", flush=True)
    return out


WARM = """
import time
t0 = time.perf_counter()
from backprop import kernels
kernels.warm_up(background=False)
print(time.perf_counter() - t0)
"""


def start_times() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}

        def run(code: str) -> float:
            out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                                 capture_output=True, text=True)
            return float(out.stdout.split()[-1])

        cold = run(WARM)
        warm = min(run(WARM) for _ in range(3))
        numba_import = min(run("import time; t0 = time.perf_counter(); import numba; "
                               "print(time.perf_counter() - t0)") for _ in range(3))
        files = sum(1 for _ in Path(cache_dir).rglob("*") if _.is_file())
        size = sum(p.stat().st_size for p in Path(cache_dir).rglob("*") if p.is_file())
    return {"cold_compile_s": cold, "warm_cache_s": warm, "import_numba_s": numba_import,
            "cache_files": files, "cache_bytes": size}


def install_size() -> dict[str, Any]:
    import importlib.util

    out: dict[str, Any] = {}
    for name in ("numba", "llvmlite"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        root = Path(spec.origin).parent
        out[name] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    out["total_mb"] = sum(v for v in out.values()) / 1e6
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--skip-grid", action="store_true")
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    if not kernels.available():
        sys.exit("numba is not installed: pip install -e '.[fast]'")
    report: dict[str, Any] = {"bench": "bench/kernels.py", "auto_rule": kernels.AUTO_RULE,
                              "cpu_count": os.cpu_count()}
    if not args.skip_grid:
        report["grid"] = grid(args.quick, args.repeats or (1 if args.quick else 3))
    report["start"] = start_times()
    report["install_bytes"] = install_size()
    s = report["start"]
    print(f"start: cold compile {s['cold_compile_s']:.1f} s, warm cache {s['warm_cache_s']:.2f} s"
          f", import numba {s['import_numba_s']:.2f} s; cache {s['cache_bytes'] / 1e6:.1f} MB in "
          f"{s['cache_files']} files; numba + llvmlite installed: "
          f"{report['install_bytes']['total_mb']:.0f} MB")
    print(json.dumps(report, separators=(",", ":")))


if __name__ == "__main__":
    main()
