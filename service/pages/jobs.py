"""The jobs list, a job's page (live curves over the event stream) and its Cancel button."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for

from .. import db, jobs
from ..api.common import newest_first, owned
from ..errors import APIError
from ..models import Job
from ..schemas import ListQuery
from . import bp, present

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def _job(job_id: str) -> Job:
    try:
        return owned(Job, job_id, "job")
    except APIError:
        abort(404, f"There is no job {job_id!r} for your API key.")


@bp.get("/jobs")
def jobs_list() -> Any:
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        abort(400, f"status must be one of {', '.join(STATUSES)}")
    cursor = request.args.get("cursor") or None
    query = ListQuery(limit=50, cursor=cursor[:100] if cursor else None)
    result = newest_first(Job, query, jobs.out, *([Job.status == status] if status else []))
    rows = [present.job_row(j) for j in result["items"]]
    return render_template(
        "jobs.html", rows=rows, status=status, statuses=STATUSES,
        refresh=any(r["active"] for r in rows),
        next_url=url_for("pages.jobs_list", status=status, cursor=result["next_cursor"])
        if result["next_cursor"] else None)


@bp.get("/jobs/<job_id>")
def job_page(job_id: str) -> Any:
    job = _job(job_id)
    out = jobs.out(job)
    return render_template(
        "job.html", job=present.job_row(out), spec=present.spec_text(job.spec),
        optimizer=present.optimizer_text(job.spec),
        schedule=present.spec_text(job.spec.get("training", {}).get("lr_schedule", {})),
        diagnostics_every=(job.spec.get("training", {}).get("diagnostics") or {}).get("every"),
        events_url=url_for("jobs.job_events", job_id=job.id))


@bp.post("/jobs/<job_id>/cancel")
def job_cancel(job_id: str) -> Any:
    job = _job(job_id)
    if job.status not in jobs.FINISHED:
        jobs.cancel(db.request_session(), job)
    return redirect(url_for("pages.job_page", job_id=job.id), code=303)
