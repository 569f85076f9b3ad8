"""``GET /v1/jobs/{id}/events``: a job's progress as server-sent events (on the jobs blueprint).

Browsers' ``EventSource`` cannot send an ``Authorization`` header, so this view also accepts the
dashboard's session cookie (it only reads; the cookie is ``SameSite=Strict``).
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Response
from pydantic import BaseModel, ConfigDict, Field

from .. import db, events, jobs
from ..errors import invalid
from ..models import Job
from ..schemas import Input, JobPath, Problem
from .common import cookie_auth, key_id, owned, settings
from .jobs import bp


class EventsQuery(Input):
    after: Annotated[int, Field(ge=0, le=10**9, description="Resume after this epoch (for a "
                                "page that cannot set Last-Event-ID).")] | None = None


class EventsHeader(BaseModel):
    model_config = ConfigDict(extra="allow")
    last_event_id: Annotated[str, Field(max_length=24)] | None = Field(
        None, alias="Last-Event-ID", description="Resume after this event id (`N`, an epoch's "
        "row, or `N.d`, its diagnostics); browsers send it when they reconnect.")


STREAM_DOC = {
    "description": "Server-sent events: `event: epoch` (a history row with `progress`; `id:` "
                   "is the epoch `N`); for a job with `training.diagnostics`, right after the "
                   "row of each recorded epoch `event: diagnostics` (`{\"epoch\", \"layers\"}`, "
                   "an item of `GET /v1/jobs/{id}/diagnostics`; `id: N.d`); `event: status` "
                   "(the job, at the start and on every status change), and a last "
                   "`event: end` (the final job, with its `warnings`). A comment line every "
                   "~15 s (STREAM_KEEPALIVE_SECONDS); the server closes the stream after "
                   "STREAM_MAX_SECONDS and the client resumes with `Last-Event-ID`: after "
                   "`N` it gets epoch N's diagnostics (if any) and what follows, after `N.d` "
                   "(or `?after=N`) what follows epoch N.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _resume_point(query: EventsQuery, header: EventsHeader) -> events.Resume | None:
    if header.last_event_id is not None:
        resume = events.Resume.parse(header.last_event_id)
        if resume is None:
            raise invalid(["header", "Last-Event-ID"], "must be an event id from this stream "
                          "(an epoch number N, or N.d)")
        return resume
    return None if query.after is None else events.Resume(query.after)


@bp.get("/jobs/<job_id>/events", operation_id="get_job_events",
        summary="Follow a job live (server-sent events)",
        responses={200: STREAM_DOC, 429: Problem,
                   204: {"description": "A reconnect after the end: nothing more to send "
                         "(browsers then stop reconnecting)."}})
@cookie_auth
def job_events(path: JobPath, query: EventsQuery, header: EventsHeader) -> Any:
    """Follow a job live (server-sent events).

    Resumes without a gap or a duplicate after `Last-Event-ID` (or `?after=N`); a client that
    connects after the end gets the whole history and the end; a reconnect after the end (an id
    at or past the last event) gets `204`. At most STREAMS_PER_KEY streams per API key are open
    at once (`429`)."""
    job = owned(Job, path.job_id, "job")
    after = _resume_point(query, header)
    if job.status in jobs.FINISHED and after is not None and \
            events.nothing_after(db.request_session(), job.id, after):
        return Response(status=204)
    db.close_request_session()  # no session is held while the stream runs
    cfg = settings()
    stream_id = events.open_stream(key_id(), job.id, cfg)
    body = events.Closing(events.stream(job.id, after or events.Resume(), cfg, stream_id),
                          stream_id)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
