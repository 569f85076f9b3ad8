"""Sweeps: create one (validate its space against the base job), advance it (start trials up to
``max_concurrent``, prune, finish), cancel it, and serialise it with its leaderboard.

``advance`` is called by the API when the sweep is made, by the worker when one of its trials
ends, and by every worker's periodic pass. Each call reads the sweep, decides, and commits its
decisions in one transaction fenced by ``Sweep.revision``: of two concurrent calls one commits
and the other rolls back, so no trial is started twice and no decision is taken twice.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from backprop import SpecError

from . import datasets, jobs, sweep_pruning, sweep_space
from .config import Limits
from .errors import APIError, invalid
from .models import Dataset, Job, Sweep, new_id, utcnow
from .schemas import JobCreate
from .sweep_schemas import MAX_TRIALS, SweepCreate

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")


def _located(exc: Exception, prefix: list[str | int]) -> APIError:
    """A trial body's error, pointed at the sweep field that produced it."""
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = [*prefix, *[p for p in err["loc"] if not str(p).startswith("function-")]]
        return invalid(loc, f"{'.'.join(map(str, prefix[1:]))}: {err['msg']}")
    if isinstance(exc, SpecError):
        return invalid([*prefix, *exc.loc], f"{'.'.join(map(str, prefix[1:]))}: {exc.msg}")
    if isinstance(exc, APIError):
        msg = exc.errors[0]["msg"] if exc.errors else exc.detail
        return invalid(prefix, f"{'.'.join(map(str, prefix[1:]))}: {msg}")
    return invalid(prefix, str(exc))


def _check_body(body: dict[str, Any], ds: Dataset, limits: Limits) -> dict[str, Any]:
    """The resolved spec of one trial body; raises what the job endpoint would."""
    return jobs.resolved_spec(JobCreate.model_validate(body), ds, limits)


def create(s: Session, tenant_id: str, body: SweepCreate, limits: Limits) -> Sweep:
    """Validate the sweep and make its row (trials start with ``advance``)."""
    if body.base.continue_from is not None:
        raise invalid(["base", "continue_from"], "a sweep's trials train from scratch; continue "
                      "its best trial's model with a job afterwards")
    base = body.base.model_dump(mode="json", exclude_none=True, by_alias=True)
    if body.base.dataset is not None:
        ds = datasets.store(s, tenant_id, datasets.from_json(body.base.dataset, limits))
        s.flush()
        base.pop("dataset")
        base["dataset_id"] = ds.id
    else:
        ds = s.get(Dataset, body.base.dataset_id)
        if ds is None or ds.tenant_id != tenant_id:
            raise invalid(["base", "dataset_id"], f"no dataset with id {body.base.dataset_id!r}")
    space = {path: dim.plain() for path, dim in body.space.items()}
    resolved = _check_body(base, ds, limits)
    for path, value in sweep_space.extremes(space):
        try:
            _check_body(sweep_space.set_path(base, path, value), ds, limits)
        except KeyError as exc:
            raise invalid(["space", path], f"space.{path}: not a field of the job body "
                          f"({exc.args[0]})") from None
        except (ValidationError, SpecError, APIError) as exc:
            raise _located(exc, ["space", path]) from None

    max_trials = body.max_trials
    if body.strategy == "grid":
        for path, dim in space.items():
            if sweep_space.kind(dim) in ("uniform", "log_uniform") and not dim.get("points"):
                raise invalid(["space", path, "points"], f"space.{path}: the grid strategy "
                              "needs 'points' for a continuous range")
        size = sweep_space.grid_size(space)
        if "max_trials" not in body.model_fields_set:
            max_trials = min(size, MAX_TRIALS)
        if size > max_trials:
            raise invalid(["max_trials"], f"the grid has {size} points, more than max_trials "
                          f"({max_trials}); raise max_trials or use fewer points")
    metric = body.metric
    varies_split = "training.validation_split" in space
    if metric.startswith("val_") and not varies_split and \
            resolved["training"]["validation_split"] == 0:
        raise invalid(["metric"], f"metric {metric!r} needs a validation split: set "
                      "base.training.validation_split (e.g. 0.2) or use 'loss'")
    if metric.endswith("accuracy") and ds.task != "classification":
        raise invalid(["metric"], f"metric {metric!r} needs a classification dataset; "
                      f"{ds.id} is {ds.task}")
    direction = body.direction or ("maximize" if metric.endswith("accuracy") else "minimize")
    seed = body.seed if body.seed is not None else secrets.randbits(32)
    spec = {"base": base, "space": space, "strategy": body.strategy, "metric": metric,
            "direction": direction, "max_trials": max_trials,
            "max_concurrent": body.max_concurrent,
            "pruner": body.pruner.model_dump() if body.pruner else None, "seed": seed}
    sweep = Sweep(id=new_id("swp"), tenant_id=tenant_id, status="running", spec=spec,
                  revision=0, trials_created=0, cancel_requested=False)
    s.add(sweep)
    return sweep


def value_of(job: Job, metric: str) -> float | None:
    v = (job.metrics or {}).get(metric)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "minimize" else a > b


def _propose(sweep: Sweep, trials: list[Job], number: int) -> dict[str, Any] | None:
    spec, space = sweep.spec, sweep.spec["space"]
    if spec["strategy"] == "grid":
        return next(itertools.islice(sweep_space.grid(space), number, None), None)
    if spec["strategy"] == "random":
        return sweep_space.random_trial(space, spec["seed"], number)
    finished = [(t.trial_params or {}, v) for t in trials if t.status == "succeeded"
                and (v := value_of(t, spec["metric"])) is not None]
    return sweep_space.tpe_trial(space, spec["seed"], number, finished, spec["direction"])


def _new_trial(s: Session, sweep: Sweep, number: int, params: dict[str, Any],
               limits: Limits) -> Job:
    body = sweep.spec["base"]
    for path, value in params.items():
        body = sweep_space.set_path(body, path, value)
    body.setdefault("training", {}).setdefault("seed", sweep.spec["seed"])
    ds = s.get(Dataset, body["dataset_id"])
    try:
        if ds is None:
            raise ValueError(f"dataset {body['dataset_id']} no longer exists")
        spec = _check_body(body, ds, limits)
        job = Job(id=new_id("job"), tenant_id=sweep.tenant_id, dataset_id=ds.id,
                  status="queued", spec=spec, epochs=spec["training"]["epochs"])
    except (ValidationError, SpecError, APIError, ValueError) as exc:
        detail = exc.detail if isinstance(exc, APIError) else str(exc)
        job = Job(id=new_id("job"), tenant_id=sweep.tenant_id, dataset_id=body["dataset_id"],
                  status="failed", spec={"network": body.get("network"),
                                         "training": body.get("training")},
                  epochs=0, error_title="Invalid trial", error_detail=detail,
                  finished_at=utcnow())
    job.sweep_id, job.trial_number, job.trial_params = sweep.id, number, params
    s.add(job)
    return job


def advance(s: Session, sweep_id: str, limits: Limits) -> list[str]:
    """Take this sweep's next decisions and commit them; returns the ids of the queued trials
    it made (the caller sends them to the broker). A lost race returns ``[]``."""
    sweep = s.get(Sweep, sweep_id)
    if sweep is None or sweep.status != "running":
        return []
    revision, spec = sweep.revision, sweep.spec
    trials = list(s.scalars(select(Job).where(Job.sweep_id == sweep_id)
                            .order_by(Job.trial_number)).all())
    active = [t for t in trials if t.status in ACTIVE]
    new: list[Job] = []
    values: dict[str, Any] = {"revision": revision + 1}
    if sweep.cancel_requested:
        for t in active:
            jobs.request_cancel(s, t)
        values.update(status="cancelled", finished_at=utcnow())
    else:
        if spec.get("pruner"):
            for t in sweep_pruning.to_prune(s, spec, trials):
                s.execute(update(Job).where(Job.id == t.id, Job.status == "running")
                          .values(cancel_requested=True, pruned=True))
        number = sweep.trials_created
        while len(active) + len(new) < spec["max_concurrent"] and number < spec["max_trials"]:
            params = _propose(sweep, trials, number)
            if params is None:  # the grid is exhausted
                break
            job = _new_trial(s, sweep, number, params, limits)
            (new if job.status == "queued" else trials).append(job)
            number += 1
        exhausted = number >= spec["max_trials"] or (
            spec["strategy"] == "grid" and number >= sweep_space.grid_size(spec["space"]))
        values["trials_created"] = number
        if not active and not new and exhausted:
            values.update(_outcome(sweep, trials))
    claimed = s.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.revision == revision)
                        .values(**values)).rowcount
    if not claimed:
        s.rollback()
        return []
    try:
        s.commit()
    except OperationalError:  # SQLite: a concurrent advance committed first
        s.rollback()
        return []
    return [j.id for j in new]


def _outcome(sweep: Sweep, trials: list[Job]) -> dict[str, Any]:
    done = {"finished_at": utcnow()}
    if any(t.status == "succeeded" for t in trials):
        return {**done, "status": "succeeded"}
    failed = [t for t in trials if t.status == "failed"]
    first = failed[0] if failed else None
    reason = f"{first.error_title}: {first.error_detail}" if first else "no trial finished"
    return {**done, "status": "failed", "error_title": "Every trial failed",
            "error_detail": f"none of the {len(trials)} trials succeeded; trial "
                            f"{first.trial_number if first else 0}: {reason}"[:4000]}


def cancel(s: Session, sweep: Sweep) -> None:
    if sweep.status != "running":
        raise APIError(409, "Conflict", f"sweep {sweep.id} has already finished ({sweep.status})")
    s.execute(update(Sweep).where(Sweep.id == sweep.id).values(cancel_requested=True))
    s.commit()


def best(sweep: Sweep, trials: list[Job]) -> Job | None:
    metric, direction = sweep.spec["metric"], sweep.spec["direction"]
    top: Job | None = None
    for t in trials:
        v = value_of(t, metric)
        if t.status == "succeeded" and v is not None and (
                top is None or _better(v, value_of(top, metric) or 0.0, direction)):
            top = t
    return top


def leaderboard(sweep: Sweep, trials: list[Job]) -> list[Job]:
    """Succeeded trials by the metric (best first), then the others by number."""
    metric = sweep.spec["metric"]
    sign = 1.0 if sweep.spec["direction"] == "minimize" else -1.0

    def key(t: Job) -> tuple[int, float, int]:
        v = value_of(t, metric)
        ranked = t.status == "succeeded" and v is not None
        return (0 if ranked else 1, sign * v if ranked and v is not None else 0.0,
                t.trial_number or 0)

    return sorted(trials, key=key)


def trial_out(sweep: Sweep, t: Job) -> dict[str, Any]:
    error = {"title": t.error_title, "detail": t.error_detail or ""} if t.error_title else None
    if t.pruned and t.status == "cancelled":
        error = {"title": "Pruned", "detail": f"stopped at epoch {t.epoch} by the "
                 f"{sweep.spec['pruner']['name']} pruner"}
    return {"number": t.trial_number, "job_id": t.id, "status": t.status, "pruned": t.pruned,
            "params": t.trial_params or {}, "value": value_of(t, sweep.spec["metric"]),
            "epoch": t.epoch, "metrics": t.metrics, "model_id": t.model_id, "error": error}


def out(sweep: Sweep, trials: list[Job]) -> dict[str, Any]:
    counts = {k: 0 for k in ("queued", "running", "succeeded", "failed", "cancelled")}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    top = best(sweep, trials)
    return {
        "id": sweep.id, "status": sweep.status, "spec": sweep.spec,
        "trials": {"total": len(trials), **counts, "pruned": sum(t.pruned for t in trials)},
        "best": None if top is None else {
            "job_id": top.id, "model_id": top.model_id, "number": top.trial_number,
            "value": value_of(top, sweep.spec["metric"]), "params": top.trial_params or {}},
        "error": {"title": sweep.error_title, "detail": sweep.error_detail or ""}
        if sweep.error_title else None,
        "created_at": sweep.created_at.isoformat(),
        "finished_at": sweep.finished_at.isoformat() if sweep.finished_at else None,
    }
