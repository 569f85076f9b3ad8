"""The output of ``bench/engine.py``: the tables, the targets met or not, and the run's
machine, versions and commit (in the JSON line)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info
from trainers import CONFIGS, torch

ROOT = Path(__file__).resolve().parents[1]

# (config, against, minimum engine/other ratio); "ceiling" is the engine's fraction of it.
TARGETS: list[tuple[str, str, float]] = [
    ("A", "torch", 5.0), ("A", "sklearn", 2.0),
    ("B", "torch", 1.3), ("B", "sklearn", 1.3),
    ("C", "torch", 1.05), ("C", "sklearn", 1.15), ("C", "ceiling", 0.9),
    ("D", "torch", 5.0), ("D", "sklearn", 2.0),
]
# (config, kernel runner, minimum runner/engine ratio): the compiled kernel against our own NumPy
# kernel in the same repeat; on B and C the ``auto`` choice must never be slower.
KERNEL_TARGETS: list[tuple[str, str, float]] = [
    ("A", "compiled", 1.5), ("D", "compiled", 10.0), ("E", "compiled", 10.0),
    ("F", "compiled", 20.0), ("B", "auto", 1.0), ("C", "auto", 1.0),
]
KERNEL_RUNNERS = ("compiled", "auto")

# -- output ----------------------------------------------------------------------------------


def fmt_rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_table(threads: int, summaries: dict[str, dict[str, Any]]) -> None:
    print(f"\nthreads = {threads}   (A, B, C: samples/s; D: steps/s; ratios: medians of "
          "per-repeat ratios)")
    labels = {}
    for key, s in summaries.items():
        cfg = CONFIGS[key]
        batch = "full" if cfg.batch is None else cfg.batch
        labels[key] = f"{key} {cfg.arch()} b{batch} {cfg.title} x{s['rows']:,}"
    width = max(len(v) for v in labels.values()) + 2
    head = (f"{'config':<{width}}{'engine':>10}{'sklearn':>10}{'torch':>10}{'eng/skl':>9}"
            f"{'eng/torch':>10}{'ceiling':>11}{'GFLOP/s':>9}{'eng/ceil':>9}{'eng/need':>9}")
    print(head)
    print("-" * len(head))
    for key, s in summaries.items():
        print(f"{labels[key]:<{width}}{fmt_rate(s['engine']):>10}{fmt_rate(s['sklearn']):>10}"
              f"{fmt_rate(s.get('torch')):>10}{fmt_ratio(s['engine_over_sklearn']):>9}"
              f"{fmt_ratio(s.get('engine_over_torch')):>10}{fmt_rate(s['ceiling']):>11}"
              f"{s['ceiling_gflops']:>9.3g}{fmt_ratio(s['engine_over_ceiling']):>9}"
              f"{fmt_ratio(s['engine_over_ceiling_needed']):>9}")
    print("ceiling: samples (D: steps) per second if a step cost only its 3 x layers matmuls "
          "(6 x weights FLOPs per sample) at the\nNumPy rate measured at those shapes; eng/need: "
          "the same without the first layer's input gradient, which no trainer computes")


def print_kernels(threads: int, summaries: dict[str, dict[str, Any]]) -> None:
    rows = {k: s for k, s in summaries.items() if any(c in s for c in KERNEL_RUNNERS)}
    if not rows:
        return
    print(f"\nkernels, threads = {threads}   (rates as above; ratios: medians of per-repeat "
          "ratios; auto -> the kernel it chose)")
    head = (f"{'config':<8}{'numpy':>11}{'compiled':>11}{'auto':>11}{'auto ->':>10}"
            f"{'comp/np':>9}{'auto/np':>9}{'comp/skl':>9}{'comp/torch':>11}")
    print(head)
    print("-" * len(head))
    for key, s in rows.items():
        print(f"{key:<8}{fmt_rate(s['engine']):>11}{fmt_rate(s.get('compiled')):>11}"
              f"{fmt_rate(s.get('auto')):>11}{s.get('auto_kernel', '-'):>10}"
              f"{fmt_ratio(s.get('compiled_over_engine')):>9}"
              f"{fmt_ratio(s.get('auto_over_engine')):>9}"
              f"{fmt_ratio(s.get('compiled_over_sklearn')):>9}"
              f"{fmt_ratio(s.get('compiled_over_torch')):>11}")


def evaluate_kernel_targets(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key, runner, minimum in KERNEL_TARGETS:
        value = summaries.get(key, {}).get(f"{runner}_over_engine")
        if key in summaries:
            out.append({"config": key, "against": f"{runner}/numpy", "target": minimum,
                        "value": value, "met": None if value is None else bool(value >= minimum)})
    return out


def evaluate_targets(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key, against, minimum in TARGETS:
        if key not in summaries:
            continue
        s = summaries[key]
        value = s.get(f"engine_over_{against}")
        out.append({"config": key, "against": against, "target": minimum, "value": value,
                    "met": None if value is None else bool(value >= minimum)})
    return out


def print_targets(targets: list[dict[str, Any]], threads: int) -> None:
    print(f"\ntargets (threads = {threads}): engine / other, or engine / ceiling")
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        print(f"  {t['config']} vs {t['against']:<8} >= {t['target']:<5} got {value:<6} {verdict}")


def git_commit() -> str | None:
    """The repository's commit, ``+dirty`` when backprop/ has uncommitted changes (read-only:
    ``--no-optional-locks`` keeps ``git status`` from refreshing the index)."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    try:
        out = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "backprop"],
                               capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for i in threadpool_info()]
    return {"cpu": cpu, "cpu_count": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(), "threadpools": blas}


def versions() -> dict[str, Any]:
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
            "torch": None if torch is None else torch.__version__,
            "engine_commit": git_commit()}
