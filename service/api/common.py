"""What every ``/v1`` blueprint shares: authentication, JSON body checks, pagination."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request
from flask_openapi3 import APIBlueprint, Tag

from .. import auth
from ..app import session
from ..config import Settings
from ..errors import APIError

SECURITY = [{"bearer": []}]


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def blueprint(name: str, tag: str, description: str) -> APIBlueprint:
    bp = APIBlueprint(name, __name__, url_prefix="/v1",
                      abp_tags=[Tag(name=tag, description=description)],
                      abp_security=SECURITY)

    @bp.before_request
    def _authenticate() -> None:
        g.tenant_id = auth.authenticate(session(), request.headers.get("Authorization"))
        if request.method in ("POST", "PUT", "PATCH"):
            _check_body()

    return bp


def _check_body() -> None:
    """Media type and JSON syntax, before validation: 415, or 400 with a clear reason."""
    allowed = getattr(current_app.view_functions.get(request.endpoint), "body_types",
                      ("application/json",))
    if not allowed:  # an action that takes no body: nothing, or an empty JSON object
        if request.content_length and (request.mimetype != "application/json"
                                       or request.get_json() != {}):
            raise APIError(422, "Unprocessable Content", "this operation takes no body",
                           errors=[{"loc": [], "msg": "must be empty"}])
        return
    if not request.content_length and request.mimetype not in allowed:
        raise APIError(400, "Body Required",
                       f"this operation needs a request body ({' or '.join(allowed)})")
    if request.mimetype not in allowed:
        raise APIError(415, "Unsupported Media Type",
                       f"the body must be {' or '.join(allowed)}, got "
                       f"{request.mimetype or 'no Content-Type'!r}")
    if request.mimetype == "application/json" and not isinstance(request.get_json(), dict):
        raise APIError(422, "Unprocessable Content", "the body must be a JSON object",
                       errors=[{"loc": [], "msg": "must be a JSON object"}])


def accepts(*types: str) -> Any:
    """Mark a view as taking request bodies of these media types (default: JSON only).
    Goes below the route decorator, so the route's wrapper copies the mark."""

    def mark(view: Any) -> Any:
        view.body_types = types
        return view

    return mark


def tenant() -> str:
    return g.tenant_id


def page(items: list[dict[str, Any]], limit: int, cursor_of: Any) -> dict[str, Any]:
    """``items`` holds up to ``limit + 1`` rows; the extra one means there is a next page."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": str(cursor_of(items[-1])) if more else None}
