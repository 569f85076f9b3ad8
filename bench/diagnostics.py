#!/usr/bin/env python
"""What per-layer diagnostics cost: training with ``training.diagnostics: {"every": 1}``
against the same training without them, side by side in one run.

Two ``backprop.Trainer``s on the same data, network and seed (bench/engine.py's configurations
and data) alternate repeat by repeat, the order rotating; each figure is the median over repeats
of the per-repeat ratio (time with diagnostics / time without). Diagnostics are recorded every
epoch here, the most expensive cadence; the default ``{}`` records every 10th.

On a shared, noisy machine a few percent are within the noise of whole epochs, so the hook is
also timed alone in the same run: the mean time of one diagnostics call (``Probe``, what the
loop runs at the end of a diagnostic epoch) over ~0.2 s of calls after each repeat; its median
over repeats, over the median plain epoch, gives ``1 + hook / epoch``.

    python bench/diagnostics.py                  # B (the target: <= 1.05), A and D; ~2 min
    python bench/diagnostics.py --configs B --repeats 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import CONFIGS, Config, EngineRunner, make_data, tune_malloc

from backprop.diagnostics import Probe

EPOCHS = {"A": 50, "B": 1, "C": 1, "D": 3000}  # per timed repeat


def runner(cfg: Config, data: object, every: int | None) -> EngineRunner:
    r = EngineRunner(cfg, data, seed=0)  # type: ignore[arg-type]
    if every:
        r.trainer.config = {**r.trainer.config, "diagnostics": {"every": every}}
    return r


def measure(key: str, repeats: int, threads: int) -> dict[str, float | int | str]:
    cfg = CONFIGS[key]
    data = make_data(cfg, cfg.rows)
    plain, watched = runner(cfg, data, None), runner(cfg, data, 1)
    epochs = EPOCHS[key]
    plain.run(1)  # warm up both (buffers, BLAS)
    watched.run(1)
    ratios, times = [], {"plain": [], "watched": []}
    t = watched.trainer
    probe = Probe(t.network, data.X, data.Y, t.loss, t.config["l2"])  # type: ignore[attr-defined]
    before = t.network.params.copy()
    hook = []
    for i in range(repeats):
        order = [("plain", plain), ("watched", watched)]
        if i % 2:
            order.reverse()
        got = {}
        for name, r in order:
            got[name] = r.run(epochs)
            time.sleep(0.1)
        times["plain"].append(got["plain"])
        times["watched"].append(got["watched"])
        ratios.append(got["watched"] / got["plain"])
        t0 = time.perf_counter()
        probe(t.network, before)
        calls = max(5, int(0.2 / (time.perf_counter() - t0)))  # ~0.2 s of calls per repeat
        t0 = time.perf_counter()
        for _ in range(calls):
            probe(t.network, before)
        hook.append((time.perf_counter() - t0) / calls)
        print(f"{key} repeat {i + 1}: plain {got['plain']:.4f} s, with diagnostics "
              f"{got['watched']:.4f} s, ratio {ratios[-1]:.4f}", file=sys.stderr, flush=True)
    assert len(watched.trainer.diagnostics) == watched.trainer.epoch  # recorded every epoch
    assert np.array_equal(plain.network.params, watched.network.params)  # training unchanged
    return {"config": key, "title": f"{cfg.arch()} {cfg.title}", "threads": threads,
            "epochs_per_repeat": epochs, "repeats": repeats,
            "plain_seconds": statistics.median(times["plain"]),
            "watched_seconds": statistics.median(times["watched"]),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "hook_ms": statistics.median(hook) * 1e3,
            "hook_ratio": 1 + statistics.median(hook) * epochs
            / statistics.median(times["plain"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="BAD")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tune_malloc()
    results = []
    with threadpool_limits(args.threads):
        for key in args.configs:
            results.append(measure(key, args.repeats, args.threads))
    print("| config | epochs/repeat | without (s) | every: 1 (s) | ratio (median) | min-max "
          "| hook (ms) | 1 + hook/epoch |\n|---|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        print(f"| {r['config']} {r['title']} | {r['epochs_per_repeat']} | "
              f"{r['plain_seconds']:.4f} | {r['watched_seconds']:.4f} | "
              f"**{r['ratio_median']:.3f}** | {r['ratio_min']:.3f}-{r['ratio_max']:.3f} | "
              f"{r['hook_ms']:.3f} | **{r['hook_ratio']:.4f}** |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
