#!/usr/bin/env python
"""Training speed of this engine against scikit-learn and PyTorch, in one run.

Trains, on the same data, network, batch size, optimiser (SGD, momentum 0.9, constant rate)
and thread count:

- ``engine``: ``backprop.Trainer(...).fit`` on preprocessed float32 arrays, NumPy kernel;
- ``compiled`` and ``auto`` (when numba is installed): the same with ``training.kernel``
  ``"compiled"`` and ``"auto"`` (``auto`` is the NumPy kernel where its rule says so, so on B and C
  it measures that the choice costs nothing);
- ``sklearn``: ``MLPClassifier(solver="sgd")`` fed float32 inputs (so it computes in float32);
- ``torch`` (when installed): a plain loop over ``nn.Sequential`` on the CPU;

and times, at every configuration's exact shapes, the three matmuls per layer of a training
step in NumPy (forward ``A @ W``, ``dW = A.T @ delta``, ``dA = delta @ W.T``) to get a ceiling:
``6 x weights`` FLOPs per sample at that rate.

Configurations: A 64-32-10 batch 32 on scikit-learn's digits; B 784-256-128-10 batch 128 on
60,000 synthetic rows; C 784-1024-1024-10 batch 256 on 8,192 synthetic rows; D XOR 2-2-1
sigmoid/MSE full batch (steps per second); E 64-32-10 online (batch 1) on digits; F XOR 2-2-1
online. Kernel ratios (``compiled`` and ``auto`` over ``engine``) are per repeat, side by side.
Start-up costs of the compiled kernel (cold compile, warm cache, install size):
``bench/kernel_start.py``.

The machine is assumed noisy: trainers alternate repeat by repeat (the order rotates), there is
a pause between libraries (idle BLAS/OpenMP threads keep spinning for a while), a small probe
matmul is timed before each repeat (a slow probe means a stall: wait, then re-run the repeat
later), and every figure is the median of per-repeat values (ratios are taken within a repeat).

Memory: on this VM, memory a process frees returns to the host at once and is slow to touch
again, which would charge the engine's per-``fit`` copy of the training set to the host; the
bench keeps freed memory in the process for every library (see ``tune_malloc``).

Prints a table per thread count and, as its last line, one JSON object with every figure.
See bench/README.md for the results, the method and the engine's profile.

    python bench/engine.py                 # 1 thread (main) and 2 threads, ~6 minutes
    python bench/engine.py --quick         # smoke run, < 1 minute
    python bench/engine.py --threads 1 --configs AD --repeats 9
    python bench/engine.py --configs ADEF --no-compiled     # the NumPy kernel only
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/engine.py` puts bench/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

from engine_probes import (  # noqa: E402
    PROBE_SLOW,
    MatmulCeiling,
    Probe,
    fresh_memory_ms,
    log,
    tune_malloc,
)
from engine_report import (  # noqa: E402
    KERNEL_RUNNERS,
    evaluate_kernel_targets,
    evaluate_targets,
    machine,
    print_kernels,
    print_table,
    print_targets,
    versions,
)
from trainers import (  # noqa: E402
    CONFIGS,
    Config,
    EngineRunner,
    Runner,
    SklearnRunner,
    TorchRunner,
    make_data,
    torch,
)

import backprop  # noqa: E402

PAUSE = 0.2  # seconds between libraries: idle BLAS / OpenMP threads spin for a while





@dataclass
class Repeat:
    rates: dict[str, float]  # samples (or steps) per second
    ceiling: float  # samples (steps) per second at the all-matmuls ceiling
    ceiling_needed: float  # same, counting only the matmuls the engine needs
    ceiling_gflops: float  # the matmul rate behind ``ceiling``
    probe: float  # probe time / best probe time, before the repeat
    waited: float
    stalled: bool


@dataclass
class Result:
    cfg: Config
    threads: int
    rows: int
    epochs: int
    repeats: list[Repeat] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def used(self) -> list[Repeat]:
        """Repeats without a stalled probe, unless fewer than half of them are clean."""
        clean = [r for r in self.repeats if not r.stalled]
        return clean if 2 * len(clean) >= len(self.repeats) and clean else self.repeats

    def median(self, fn: Any) -> float | None:
        values = [fn(r) for r in self.used()]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict[str, Any]:
        names = list(self.repeats[0].rates) if self.repeats else []
        out: dict[str, Any] = {
            "unit": "steps/s" if self.cfg.steps_unit else "samples/s",
            "rows": self.rows,
            "epochs_per_repeat": self.epochs,
            "repeats": len(self.repeats),
            "repeats_used": len(self.used()),
            "stalled_repeats": sum(r.stalled for r in self.repeats),
        }
        for name in names:
            out[name] = self.median(lambda r, k=name: r.rates[k])
        for name in names:
            if name != "engine" and name not in KERNEL_RUNNERS:
                out[f"engine_over_{name}"] = self.median(
                    lambda r, k=name: r.rates["engine"] / r.rates[k])
        for kernel in KERNEL_RUNNERS:
            if kernel in names:
                for name in names:
                    if name != kernel and name not in KERNEL_RUNNERS:
                        out[f"{kernel}_over_{name}"] = self.median(
                            lambda r, k=name, c=kernel: r.rates[c] / r.rates[k])
        flops_per_sample = 6 * self.cfg.n_weights
        out["ceiling"] = self.median(lambda r: r.ceiling)
        out["ceiling_gflops"] = self.median(lambda r: r.ceiling_gflops)
        out["engine_over_ceiling"] = self.median(lambda r: r.rates["engine"] / r.ceiling)
        out["ceiling_needed"] = self.median(lambda r: r.ceiling_needed)
        out["engine_over_ceiling_needed"] = self.median(
            lambda r: r.rates["engine"] / r.ceiling_needed)
        per_rate = self.rows if self.cfg.batch is None else 1  # D: a step is all the rows
        out["engine_gflops"] = out["engine"] * per_rate * flops_per_sample / 1e9
        out["probe_max"] = max((r.probe for r in self.repeats), default=None)
        out.update(self.extra)
        return out


def run_config(cfg: Config, threads: int, *, quick: bool, repeats: int, use_torch: bool,
               max_wait: float, probe: Probe, kernels: tuple[str, ...] = ()) -> Result:
    rows = cfg.quick_rows if quick else cfg.rows
    epochs = cfg.quick_epochs if quick else cfg.epochs
    data = make_data(cfg, rows)
    rows = data.X.shape[0]
    batch = rows if cfg.batch is None else min(cfg.batch, rows)
    engine, sklearn = EngineRunner(cfg, data, 0), SklearnRunner(cfg, data, 0)
    torch_runner = TorchRunner(cfg, data, 0) if use_torch else None
    runners: list[Runner] = [engine, sklearn]
    if torch_runner is not None:
        runners.append(torch_runner)
    kernel_runners = [EngineRunner(cfg, data, 0, kernel) for kernel in kernels]
    runners.extend(kernel_runners)
    ceiling = MatmulCeiling(cfg, batch)
    ceiling.calibrate()
    result = Result(cfg, threads, rows, epochs)
    warm = max(1, epochs // 10)
    # First-call costs (buffers, caches, lazy imports, heap growth) out of the timing. Twice: the
    # first round leaves the heap laid out as the timed repeats will find it.
    for _ in range(2):
        for runner in runners:
            runner.run(warm)
            time.sleep(PAUSE)
    result.extra["engine_dtype"] = str(engine.network.dtype)
    for runner in kernel_runners:
        result.extra[f"{runner.name}_kernel"] = runner.kernel  # what "auto" chose
    result.extra["sklearn_dtype"] = sklearn.dtype()  # float32 in, float32 weights out
    if torch_runner is not None:
        weight = torch_runner.model[0].weight
        result.extra["torch_dtype"] = str(weight.dtype).removeprefix("torch.")
        result.extra["torch_fused_sgd"] = torch_runner.fused
    work = rows * epochs if cfg.batch is not None else epochs
    units: list[Runner | MatmulCeiling] = [*runners, ceiling]
    max_runs = repeats + max(2, repeats // 2)  # re-runs allowed for stalled repeats
    while len(result.repeats) < max_runs:
        if sum(not x.stalled for x in result.repeats) >= repeats:
            break
        n = len(result.repeats)
        ratio, waited = probe.wait_until_quiet(max_wait)
        order = units[n % len(units):] + units[:n % len(units)]  # rotate who goes first
        rates: dict[str, float] = {}
        t_all = t_needed = math.nan
        for unit in order:
            gc.collect()
            time.sleep(PAUSE)
            if isinstance(unit, MatmulCeiling):
                t_all, t_needed = unit.run()
            else:
                rates[unit.name] = work / unit.run(epochs)
        per_step = 1 if cfg.batch is None else batch  # full batch: steps, not samples
        rep = Repeat({k: rates[k] for k in ("engine", "sklearn", "torch", *KERNEL_RUNNERS)
                      if k in rates},
                     per_step / t_all, per_step / t_needed, ceiling.flops / t_all / 1e9,
                     ratio, waited, ratio > PROBE_SLOW)
        result.repeats.append(rep)
        log(f"  {cfg.key} threads={threads} repeat {n + 1}: "
            + "  ".join(f"{k} {v:,.0f}" for k, v in rep.rates.items())
            + f"  ceiling {rep.ceiling:,.0f}  probe x{ratio:.2f}"
            + (f" (waited {waited:.1f}s)" if waited else "") + (" STALLED" if rep.stalled else ""))
    return result


# -- the NumPy calls of one engine step (config D) ------------------------------------------


def engine_step_seconds_d(threads: int) -> float:
    """Seconds per training step of the engine on XOR (long run, best of 3)."""
    cfg = CONFIGS["D"]
    with threadpool_limits(threads):
        runner = EngineRunner(cfg, make_data(cfg, 4), 0)
        runner.run(1000)
        return min(runner.run(5000) / 5000 for _ in range(3))


def numpy_call_seconds() -> float:
    """Cost of one small in-place NumPy ufunc call (``a *= b`` on 4x2 float32), the unit cost
    of the engine's per-step NumPy calls on tiny networks."""
    a = np.ones((4, 2), np.float32)
    b = np.ones((4, 2), np.float32)
    n = 200_000
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            np.multiply(a, b, out=a)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


# Counted by reading backprop/training.py, network.py, activations.py, losses.py and
# optimizers.py (commit in the JSON): a full-batch XOR step (2-2-1 sigmoid, MSE, SGD momentum).
ENGINE_D_NUMPY_CALLS: dict[str, int] = {
    "epoch: copyto(last_good, params)": 1,
    "batch slices Xs[a:b], Ys[a:b]": 2,
    "forward, 2 layers x (matmul, += bias, sigmoid: *=, tanh, +=, *=)": 12,
    "MSE value_and_delta: subtract, vdot, *=": 3,
    "sigmoid backward at the output: subtract, *=, *=": 3,
    "layer 1 backward: .T, matmul, add.reduce, .T, matmul, sigmoid backward (3)": 8,
    "layer 0 backward: .T, matmul, add.reduce": 3,
    "SGD momentum: multiply, *=, -=, +=": 4,
    "epoch end: isfinite(params).all()": 2,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: fewer rows and epochs, 2 repeats (< 1 minute)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts, the first is the main setting "
                        "(default 1,2; --quick: 1)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7; quick 2)")
    p.add_argument("--configs", default="ABCDEF", help="which configurations, e.g. AD")
    p.add_argument("--no-compiled", action="store_true",
                   help="leave the compiled kernel out (it is left out anyway without numba)")
    p.add_argument("--compiled-everywhere", action="store_true",
                   help="time the compiled kernel on B and C too (slow: BLAS wins there; "
                        "use with --quick)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-malloc-tuning", action="store_true",
                   help="leave glibc's malloc as it is (see tune_malloc())")
    p.add_argument("--max-wait", type=float, default=None,
                   help="seconds to wait for a stalled probe before a repeat (default 20)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON to this file")
    args = p.parse_args(argv)
    args.threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    args.repeats = args.repeats or (2 if args.quick else 7)
    args.max_wait = args.max_wait if args.max_wait is not None else (2.0 if args.quick else 20.0)
    keys = [k for k in args.configs.upper() if k in CONFIGS]
    if not keys:
        p.error(f"--configs must name some of {''.join(CONFIGS)}")
    args.configs = keys
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    use_torch = torch is not None and not args.no_torch
    use_kernels = backprop.kernels.available() and not args.no_compiled
    started = time.perf_counter()
    b_bytes = 60_000 * 794 * 4  # B's training set (inputs and one-hot targets), float32
    fresh_ms = fresh_memory_ms(b_bytes)  # before tuning malloc: what this machine does
    malloc_tuned = False if args.no_malloc_tuning else tune_malloc()
    results: dict[str, dict[str, Any]] = {}
    all_targets: dict[str, list[dict[str, Any]]] = {}
    for threads in args.threads:
        if use_torch:
            torch.set_num_threads(threads)
        summaries: dict[str, dict[str, Any]] = {}
        with threadpool_limits(threads):
            probe = Probe()
            probe.calibrate()
            for key in args.configs:
                log(f"{key}: threads={threads}")
                kernels: tuple[str, ...] = ()
                if use_kernels:
                    kernels = KERNEL_RUNNERS if key not in "BC" or args.compiled_everywhere \
                        else ("auto",)
                res = run_config(CONFIGS[key], threads, quick=args.quick, repeats=args.repeats,
                                 use_torch=use_torch, max_wait=args.max_wait, probe=probe,
                                 kernels=kernels)
                summaries[key] = res.summary()
        results[str(threads)] = summaries
        all_targets[str(threads)] = evaluate_targets(summaries) \
            + evaluate_kernel_targets(summaries)

    step_d = engine_step_seconds_d(args.threads[0]) if "D" in args.configs else None
    call = numpy_call_seconds()
    calls_d = sum(ENGINE_D_NUMPY_CALLS.values())

    for threads in args.threads:
        print_table(threads, results[str(threads)])
        print_kernels(threads, results[str(threads)])
    main_threads = args.threads[0]
    print_targets(all_targets[str(main_threads)], main_threads)
    for threads in args.threads[1:]:
        print_targets(all_targets[str(threads)], threads)
    if step_d is not None:
        print(f"\nengine, D: {step_d * 1e6:.1f} us per step; {calls_d} NumPy calls per step "
              f"x {call * 1e6:.2f} us per small NumPy call = {calls_d * call * 1e6:.1f} us")
    print(f"fresh memory: allocating and touching {b_bytes / 1e6:.0f} MB after 2 s idle took "
          f"{fresh_ms:.0f} ms (a few tens of ms on bare metal)")
    elapsed = time.perf_counter() - started
    print(f"elapsed {elapsed:.0f} s")
    report = {
        "bench": "bench/engine.py",
        "command": " ".join(["python", "bench/engine.py", *(sys.argv[1:] if argv is None
                                                            else argv)]),
        "quick": args.quick,
        "main_threads": main_threads,
        "threads": args.threads,
        "machine": machine(),
        "versions": versions(),
        "configs": {k: {"sizes": list(CONFIGS[k].sizes), "batch": CONFIGS[k].batch or "full",
                        "data": CONFIGS[k].data, "weights": CONFIGS[k].n_weights}
                    for k in args.configs},
        "results": results,
        "targets": all_targets,
        "engine_d": {"numpy_calls_per_step": calls_d,
                     "seconds_per_step": step_d,
                     "seconds_per_small_numpy_call": call},
        "malloc_tuned": malloc_tuned,
        "fresh_memory_ms_190MB": fresh_ms,
        "elapsed_seconds": round(elapsed, 1),
    }
    line = json.dumps(report, separators=(",", ":"), default=str)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(line + "\n")
    print(line, flush=True)


if __name__ == "__main__":
    main()
