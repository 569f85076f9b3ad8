"""Per-request observation: a request id, the latency and count metrics, one log line.

The request id comes from the client's ``X-Request-ID`` (when it is a short token) or is made
here; it is returned in ``X-Request-ID``, in every problem body (``request_id``) and on every
log line written while the request is served.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid

import orjson
from flask import Flask, Response, g, request

from . import logs, metrics
from .errors import PROBLEM_JSON

log = logging.getLogger("service.request")

REQUEST_ID = "X-Request-ID"
_GOOD_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_QUIET = {"/healthz", "/readyz", "/metrics"}  # probes and scrapes: DEBUG unless they fail


def _start() -> None:
    g.request_started = time.perf_counter()
    given = request.headers.get(REQUEST_ID, "")
    g.request_id = given if _GOOD_ID.match(given) else uuid.uuid4().hex
    g.request_id_token = logs.request_id.set(g.request_id)


def _finish(resp: Response) -> Response:
    state = g._get_current_object()
    started = state.pop("request_started", None)
    rid = state.get("request_id")
    if started is None or rid is None:
        return resp
    resp.headers[REQUEST_ID] = rid
    if resp.mimetype == PROBLEM_JSON and not resp.is_streamed:
        try:
            body = orjson.loads(resp.get_data())
            body.setdefault("request_id", rid)
            resp.set_data(orjson.dumps(body))
        except (orjson.JSONDecodeError, AttributeError):
            pass
    seconds = time.perf_counter() - started
    req = request._get_current_object()  # one context lookup, not one per attribute
    route = req.url_rule.rule if req.url_rule is not None else "unmatched"
    method = req.method if req.method in _METHODS else "OTHER"
    status = resp.status_code
    metrics.observe_request(method, route, status, seconds)
    level = logging.WARNING if status >= 500 else \
        logging.DEBUG if route in _QUIET else logging.INFO
    if log.isEnabledFor(level):
        log.log(level, "%s %s %d %.1f ms", req.method, req.path, status, seconds * 1000,
                extra={"request_id": rid, "method": req.method, "path": req.path,
                       "route": route, "status": status,
                       "duration_ms": round(seconds * 1000, 2),
                       "tenant": state.get("tenant_id"), "remote_addr": req.remote_addr,
                       "user_agent": req.user_agent.string or None})
    return resp


def _teardown(_: BaseException | None = None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        with contextlib.suppress(ValueError):  # made in another context: nothing to undo here
            logs.request_id.reset(token)


def register(app: Flask) -> None:
    """Install the hooks (first of the app's own ``before_request`` functions)."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.teardown_request(_teardown)
