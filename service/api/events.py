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
    last_event_id: Annotated[str, Field(max_length=20)] | None = Field(
        None, alias="Last-Event-ID", description="Resume after this event id (an epoch); "
        "browsers send it when they reconnect.")


STREAM_DOC = {
    "description": "Server-sent events: `event: epoch` (a history row with `progress`; `id:` "
                   "is the epoch), `event: status` (the job, at the start and on every status "
                   "change), and a last `event: end` (the final job). A comment line every "
                   "~15 s (STREAM_KEEPALIVE_SECONDS); the server closes the stream after "
                   "STREAM_MAX_SECONDS and the client resumes with `Last-Event-ID`.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _resume_point(query: EventsQuery, header: EventsHeader) -> int | None:
    if header.last_event_id is not None:
        value = header.last_event_id.strip()
        if not value.isdigit():
            raise invalid(["header", "Last-Event-ID"], "must be an event id (an epoch number) "
                          "from this stream")
        return int(value)
    return query.after


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
    at or past the last epoch) gets `204`. At most STREAMS_PER_KEY streams per API key are open
    at once (`429`)."""
    job = owned(Job, path.job_id, "job")
    after = _resume_point(query, header)
    if job.status in jobs.FINISHED and after is not None and \
            after >= events.last_epoch(db.request_session(), job.id):
        return Response(status=204)
    db.close_request_session()  # no session is held while the stream runs
    cfg = settings()
    stream_id = events.open_stream(key_id(), job.id, cfg)
    body = events.Closing(events.stream(job.id, after or 0, cfg, stream_id), stream_id)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
