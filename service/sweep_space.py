"""A sweep's search space: dimensions over paths of a job body, and the trials proposed in it.

A path is dotted into the job body (``training.optimizer.learning_rate``,
``network.layers.0.units``); integer parts index lists that exist in the base. A dimension is one
of ``{"choice": [...]}``, ``{"uniform": [lo, hi]}``, ``{"log_uniform": [lo, hi]}`` (``lo > 0``)
or ``{"int": [lo, hi]}`` (inclusive; ``"log": true`` samples it log-uniformly). For the ``grid``
strategy, ``uniform`` and ``log_uniform`` take ``"points": k`` (evenly spaced, on a log scale
for ``log_uniform``) and ``int`` ranges list every integer.

Strategies: ``grid`` (every combination, in order), ``random`` (trial ``i`` drawn from a generator
seeded with ``(seed, i)``: the same sweep proposes the same trials whatever finishes first) and
``tpe`` (Optuna's TPE sampler, in memory, told every finished trial; its first
``TPE_STARTUP_TRIALS`` trials are the ``random`` ones, later ones depend on the results so far).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

TPE_STARTUP_TRIALS = 5
KINDS = ("choice", "uniform", "log_uniform", "int")


def kind(dim: dict[str, Any]) -> str:
    return next(k for k in KINDS if k in dim)


def set_path(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with ``value`` at ``path``; ``KeyError`` names the bad part."""
    out = copy.deepcopy(body)
    node: Any = out
    parts = path.split(".")
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, parts[:depth + 1], create=True)
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdecimal() or int(last) >= len(node):
            raise KeyError(f"{'.'.join(parts)}: no list item {last!r} in the base")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise KeyError(f"{'.'.join(parts[:-1])} is not an object in the base")
    return out


def _child(node: Any, part: str, where: list[str], create: bool) -> Any:
    if isinstance(node, list):
        if not part.isdecimal() or int(part) >= len(node):
            raise KeyError(f"{'.'.join(where)}: the base has no list item {part!r}")
        return node[int(part)]
    if not isinstance(node, dict):
        raise KeyError(f"{'.'.join(where[:-1])} is not an object in the base")
    if part not in node or node[part] is None:
        if not create:
            raise KeyError('.'.join(where))
        node[part] = {}
    return node[part]


def grid_values(dim: dict[str, Any]) -> list[Any]:
    k = kind(dim)
    if k == "choice":
        return list(dim["choice"])
    lo, hi = dim[k]
    if k == "int":
        return list(range(int(lo), int(hi) + 1))
    points = int(dim.get("points") or 0)
    if points == 1:
        return [float(lo)]
    if k == "uniform":
        return [float(v) for v in np.linspace(lo, hi, points)]
    return [float(v) for v in np.geomspace(lo, hi, points)]


def grid_size(space: dict[str, dict[str, Any]]) -> int:
    return math.prod(len(grid_values(dim)) for dim in space.values())


def grid(space: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
    paths = list(space)
    for combo in itertools.product(*(grid_values(space[p]) for p in paths)):
        yield dict(zip(paths, combo, strict=True))


def _draw(dim: dict[str, Any], rng: np.random.Generator) -> Any:
    k = kind(dim)
    if k == "choice":
        return dim["choice"][int(rng.integers(len(dim["choice"])))]
    lo, hi = dim[k]
    if k == "uniform":
        return float(rng.uniform(lo, hi))
    if k == "log_uniform":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if dim.get("log"):
        return int(min(hi, max(lo, round(math.exp(rng.uniform(math.log(lo),
                                                              math.log(hi + 1)) - 0.5)))))
    return int(rng.integers(int(lo), int(hi) + 1))


def random_trial(space: dict[str, dict[str, Any]], seed: int, number: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, number])
    return {path: _draw(dim, rng) for path, dim in space.items()}


def extremes(space: dict[str, dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Every value a dimension can take at its edges (each choice; both ends of a range): what
    validation tries on the base before the sweep starts."""
    for path, dim in space.items():
        k = kind(dim)
        values = dim["choice"] if k == "choice" else dim[k]
        for value in values:
            yield path, int(value) if k == "int" else value


def _distributions(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for path, dim in space.items():
        k = kind(dim)
        if k == "choice":
            # Optuna's categorical takes None/bool/int/float/str: other JSON values by index.
            out[path] = CategoricalDistribution(list(range(len(dim["choice"]))))
        elif k == "int":
            out[path] = IntDistribution(int(dim["int"][0]), int(dim["int"][1]),
                                        log=bool(dim.get("log")))
        else:
            lo, hi = dim[k]
            out[path] = FloatDistribution(float(lo), float(hi), log=k == "log_uniform")
    return out


def tpe_trial(space: dict[str, dict[str, Any]], seed: int, number: int,
              finished: list[tuple[dict[str, Any], float]], direction: str) -> dict[str, Any]:
    """Trial ``number`` by TPE, given ``finished`` ``(params, value)`` pairs."""
    if number < TPE_STARTUP_TRIALS or not finished:
        return random_trial(space, seed, number)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = _distributions(space)
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=(seed * 1_000_003 + number) % 2**32,
                                           n_startup_trials=0))
    for params, value in finished:
        encoded = {p: (space[p]["choice"].index(v) if kind(space[p]) == "choice" else v)
                   for p, v in params.items()}
        study.add_trial(optuna.trial.create_trial(params=encoded, distributions=dists,
                                                  value=value))
    trial = study.ask(dists)
    return {p: (space[p]["choice"][v] if kind(space[p]) == "choice" else v)
            for p, v in trial.params.items()}
