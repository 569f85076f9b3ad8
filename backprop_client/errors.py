# ruff: noqa: N818 - the names the API docs and users expect (NotFound, Conflict, JobFailed...)
"""One exception type per kind of answer. Every problem+json answer of the service raises an
``APIError`` subclass carrying its ``status``, ``title``, ``detail`` and ``errors``; nothing is
ever returned as ``None`` instead."""

from __future__ import annotations

from typing import Any

import requests


class BackpropError(Exception):
    """The base of every error this client raises."""


class APIError(BackpropError):
    """The service answered with an error (RFC 9457 problem details)."""

    def __init__(self, status: int, title: str, detail: str = "",
                 errors: list[dict[str, Any]] | None = None, *,
                 response: requests.Response | None = None) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail and detail != title
                         else f"{status} {title}")
        self.status, self.title, self.detail = status, title, detail or title
        self.errors: list[dict[str, Any]] = errors or []
        self.response = response  # the answer as it was received

    @property
    def retry_after(self) -> float | None:
        """Seconds from the answer's ``Retry-After`` header, when it has one in seconds."""
        value = self.response.headers.get("Retry-After") if self.response is not None else None
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class BadRequest(APIError):
    """400: the request could not be read (malformed JSON, a missing body)."""


class Unauthorized(APIError):
    """401: no API key, or one that is unknown or revoked."""


class Forbidden(APIError):
    """403."""


class NotFound(APIError):
    """404: no such resource for this API key's tenant."""


class Conflict(APIError):
    """409: the resource is in a state that forbids this (e.g. cancelling a finished job)."""


class PayloadTooLarge(APIError):
    """413: a size limit was exceeded; ``detail`` names it."""


class UnsupportedMediaType(APIError):
    """415."""


class ValidationError(APIError):
    """422: the body or query failed validation; ``errors[i]["loc"]`` and ``["msg"]`` say where
    and why."""


class RateLimited(APIError):
    """429: too many requests for this API key (retried first, honouring ``Retry-After``)."""


class ServerError(APIError):
    """5xx: the service failed or a part of it is down (503s are retried first)."""


class ServiceUnavailable(ServerError):
    """503: the database or broker is unreachable."""


class ConnectionFailed(BackpropError):
    """The service could not be reached (after the retries)."""


class JobError(BackpropError):
    """A job ended without succeeding; ``job`` is the finished job."""

    def __init__(self, job: Any, title: str, detail: str) -> None:
        super().__init__(f"job {job.id} {job.status}: {title}: {detail}")
        self.job, self.title, self.detail = job, title, detail


class JobFailed(JobError):
    """The job ended ``failed``; ``title`` and ``detail`` are the service's reason."""


class JobCancelled(JobError):
    """The job ended ``cancelled``."""


class WaitTimeout(BackpropError, TimeoutError):
    """``Job.wait(timeout=...)`` ran out of time; the job goes on."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 415: UnsupportedMediaType, 422: ValidationError, 429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(response: requests.Response) -> APIError:
    """The exception for an error answer: its problem details, or its status line when the body
    is not problem+json (a proxy's error page, say)."""
    status = response.status_code
    body: Any = None
    if "json" in response.headers.get("Content-Type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
    if not isinstance(body, dict):
        body = {"title": response.reason or f"HTTP {status}",
                "detail": response.text[:500].strip()}
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    return cls(status, str(body.get("title") or response.reason or f"HTTP {status}"),
               str(body.get("detail") or ""), errors, response=response)
