"""``/v1/sweeps``: hyperparameter searches whose trials are ordinary jobs on any free worker."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from sqlalchemy import select

from .. import db, jobs, sweeps
from ..models import Job, Sweep
from ..schemas import Problem
from ..sweep_schemas import (
    SweepCreate,
    SweepListQuery,
    SweepOut,
    SweepPage,
    SweepPath,
    TrialPage,
    TrialQuery,
)
from .common import accepts, blueprint, newest_first, owned, page, settings, tenant

bp = blueprint("sweeps", "sweeps", "Hyperparameter sweeps: trials are jobs, spread over the "
               "workers; a leaderboard sorted by the metric.")


def _trials(sweep: Sweep) -> list[Job]:
    return list(db.request_session().scalars(
        select(Job).where(Job.sweep_id == sweep.id).order_by(Job.trial_number)).all())


def _out(sweep: Sweep) -> dict[str, Any]:
    return sweeps.out(sweep, _trials(sweep))


def _send(ids: list[str]) -> None:
    s = db.request_session()
    for job in s.scalars(select(Job).where(Job.id.in_(ids))).all():
        jobs.enqueue(s, current_app.extensions["celery"], job)


@bp.post("/sweeps", operation_id="create_sweep", summary="Start a hyper-parameter sweep",
         responses={202: SweepOut, 400: Problem})
def create_sweep(body: SweepCreate) -> Any:
    """Start a sweep: `base` is a job body, `space` maps spec paths to dimensions
    (`choice`, `uniform`, `log_uniform`, `int`); trials start at once, up to
    `max_concurrent`."""
    s = db.request_session()
    sweep = sweeps.create(s, tenant(), body, settings().limits)
    s.commit()  # commit first...
    _send(sweeps.advance(s, sweep.id, settings().limits))  # ...then enqueue the first trials
    s.refresh(sweep)
    return _out(sweep), 202, {"Location": url_for(".get_sweep", sweep_id=sweep.id)}


@bp.get("/sweeps", operation_id="list_sweeps", summary="List sweeps",
        responses={200: SweepPage})
def list_sweeps(query: SweepListQuery) -> Any:
    """Sweeps of this tenant, newest first; `?status=running` filters."""
    filters = [Sweep.status == query.status] if query.status else []
    return newest_first(Sweep, query, _out, *filters)


@bp.get("/sweeps/<sweep_id>", operation_id="get_sweep", summary="Get a sweep",
        responses={200: SweepOut})
def get_sweep(path: SweepPath) -> Any:
    """A sweep: its status, trial counts and the best trial so far."""
    return _out(owned(Sweep, path.sweep_id, "sweep"))


@bp.get("/sweeps/<sweep_id>/trials", operation_id="list_sweep_trials", summary="Trials of a sweep",
        responses={200: TrialPage})
def list_trials(path: SweepPath, query: TrialQuery) -> Any:
    """The leaderboard: succeeded trials by the metric (best first), then the others."""
    sweep = owned(Sweep, path.sweep_id, "sweep")
    ranked = sweeps.leaderboard(sweep, _trials(sweep))
    start = int(query.cursor) if query.cursor else 0  # plain ASCII digits, by the schema
    items = [sweeps.trial_out(sweep, t) for t in ranked[start:start + query.limit + 1]]
    result = page(items, query.limit, lambda _: "")
    if result["next_cursor"] is not None:
        result["next_cursor"] = str(start + query.limit)
    return result


@bp.post("/sweeps/<sweep_id>/cancel", operation_id="cancel_sweep", summary="Cancel a sweep",
         responses={202: SweepOut, 409: Problem})
@accepts()
def cancel_sweep(path: SweepPath) -> Any:
    """Cancel: no more trials start; running trials stop within an epoch."""
    s = db.request_session()
    sweep = owned(Sweep, path.sweep_id, "sweep")
    sweeps.cancel(s, sweep)
    sweeps.advance(s, sweep.id, settings().limits)
    s.refresh(sweep)
    return _out(sweep), 202
