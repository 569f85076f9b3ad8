"""What every ``/v1`` blueprint shares: authentication, JSON body checks, pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_openapi3 import APIBlueprint, Tag
from sqlalchemy import select

from .. import auth, db, ratelimit, web_session
from ..config import Settings
from ..errors import APIError, not_found
from ..schemas import ListQuery

SECURITY = [{"bearer": []}]
T = TypeVar("T")


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def key_cache() -> auth.KeyCache:
    """This process's cache of API keys (see ``service.auth``)."""
    cache = current_app.extensions.get("key_cache")
    if cache is None:
        cache = current_app.extensions.setdefault(
            "key_cache", auth.KeyCache(settings().cache_ttl_seconds))
    return cache


def blueprint(name: str, tag: str, description: str) -> APIBlueprint:
    bp = APIBlueprint(name, __name__, url_prefix="/v1",
                      abp_tags=[Tag(name=tag, description=description)],
                      abp_security=SECURITY)

    @bp.before_request
    def _authenticate() -> None:
        header = request.headers.get("Authorization")
        view = current_app.view_functions.get(request.endpoint)
        ident = None
        if header is None and getattr(view, "cookie_auth", False):
            row = web_session.signed_in_key(db.request_session())
            ident = auth.Identity(row.tenant_id, row.id) if row is not None else None
        try:
            if ident is None:
                ident = key_cache().authenticate(header, db.request_session)
        except APIError:
            ratelimit.limit(None)  # no valid key: counted per client address
            raise
        g.tenant_id, g.key_id = ident
        ratelimit.limit(g.tenant_id)  # one budget per tenant, however the header is spelt
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


def cookie_auth(view: Any) -> Any:
    """Also accept the dashboard's session cookie (read-only views that browsers call from
    ``EventSource``, which cannot send an Authorization header). Goes below the route."""
    view.cookie_auth = True
    return view


def tenant() -> str:
    return g.tenant_id


def key_id() -> str:
    return g.key_id


def owned(entity: type[T], ident: str, what: str) -> T:
    """The row ``ident`` of ``entity`` if it belongs to the caller's tenant, else 404."""
    row = db.request_session().get(entity, ident)
    if row is None or row.tenant_id != tenant():  # type: ignore[attr-defined]
        raise not_found(what, ident)
    return row


def newest_first(entity: Any, query: ListQuery, out: Callable[[Any], dict[str, Any]],
                 *filters: Any) -> dict[str, Any]:
    """One page of the tenant's rows of ``entity`` (ids sort by creation time)."""
    stmt = select(entity).where(entity.tenant_id == tenant(), *filters)
    if query.cursor:
        stmt = stmt.where(entity.id < query.cursor)
    rows = db.request_session().scalars(
        stmt.order_by(entity.id.desc()).limit(query.limit + 1)).all()
    return page([out(row) for row in rows], query.limit, lambda item: item["id"])


def page(items: list[dict[str, Any]], limit: int, cursor_of: Any) -> dict[str, Any]:
    """``items`` holds up to ``limit + 1`` rows; the extra one means there is a next page."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": str(cursor_of(items[-1])) if more else None}
