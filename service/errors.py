"""One error shape for the whole API: RFC 9457 problem details (``application/problem+json``).

Every error path ends here: ``APIError`` raised by our code, werkzeug's HTTP errors (404, 405,
413, 415, ...), pydantic validation errors, the engine's ``SpecError``, an unreachable database
(503) and anything unexpected (500, logged, no stack trace in the answer).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from flask import Flask, Response
from pydantic import ValidationError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from backprop import SpecError

from . import db

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

Loc = list[str | int]


class APIError(Exception):
    """An error answered as problem details."""

    def __init__(self, status: int, title: str, detail: str = "", *,
                 errors: list[dict[str, Any]] | None = None, type_: str = "about:blank",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.type, self.headers = errors, type_, headers or {}


def not_found(what: str, ident: str) -> APIError:
    return APIError(404, "Not Found", f"no {what} with id {ident!r}")


def invalid(loc: Loc, msg: str, title: str = "Unprocessable Content") -> APIError:
    where = ".".join(str(p) for p in loc)
    return APIError(422, title, f"{where}: {msg}" if where else msg,
                    errors=[{"loc": loc, "msg": msg}])


def too_large(limit: str, msg: str, loc: Loc | None = None) -> APIError:
    """A limit was exceeded: 413 for sizes of the request itself, named in ``limit``."""
    return APIError(413, "Content Too Large", f"{msg} (limit {limit})",
                    errors=[{"loc": loc or [], "msg": msg}] if loc is not None else None)


def problem(status: int, title: str, detail: str = "", errors: list[dict[str, Any]] | None = None,
            type_: str = "about:blank", headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status,
                            "detail": detail or title}
    if errors:
        body["errors"] = errors
    resp = Response(orjson.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


# pydantic puts the member of a union that failed into ``loc`` ("constrained-int", "int",
# "literal['full']", "function-after[...]"); those are not fields, so they are dropped and the
# members' messages joined.
_UNION_TAG = re.compile(r"^(constrained-)?(int|str|float|bool|bytes)$|^(literal|list|dict|tuple|"
                        r"set|function-[a-z]+)\[|^function-")


def _pydantic_errors(exc: ValidationError, prefix: Loc | None = None) -> list[dict[str, Any]]:
    out: dict[tuple[str | int, ...], list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        raw = list(err["loc"])
        last = raw.pop() if raw and err["type"] == "extra_forbidden" else None  # the client's key
        loc = [*(prefix or []), *(p for p in raw
                                  if not (isinstance(p, str) and _UNION_TAG.match(p)))]
        if last is not None:
            loc.append(last)
        msgs = out.setdefault(tuple(loc), [])
        if err["msg"] not in msgs:
            msgs.append(err["msg"])
    return [{"loc": list(loc), "msg": ", or ".join(msgs)} for loc, msgs in out.items()]


def validation_problem(exc: ValidationError, prefix: Loc | None = None) -> APIError:
    errors = _pydantic_errors(exc, prefix)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return APIError(422, "Unprocessable Content",
                    f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}",
                    errors=errors)


def register(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return problem(exc.status, exc.title, exc.detail, exc.errors, exc.type, exc.headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return _api_error(validation_problem(exc))

    @app.errorhandler(SpecError)
    def _spec(exc: SpecError) -> Response:
        return _api_error(invalid(list(exc.loc), exc.msg))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        if exc.response is not None and exc.code == 422:  # flask-openapi3 validation
            return exc.response
        headers = {}
        if exc.code == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        if exc.code == 413:
            return problem(413, "Content Too Large",
                           f"the request body is larger than the limit of "
                           f"{app.config.get('MAX_CONTENT_LENGTH')} bytes (MAX_REQUEST_BYTES)")
        return problem(exc.code or 500, exc.name, exc.description or exc.name, headers=headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database(exc: Exception) -> Response:
        log.warning("database error: %s", exc)
        return problem(503, "Service Unavailable", "the database is unreachable; retry later",
                       headers={"Retry-After": "5"})

    @app.errorhandler(DataError)
    def _unstorable(exc: DataError) -> Response:
        # The schemas refuse what a column cannot hold (NUL characters, overlong text, numbers
        # out of range) on every database; this is the net for an entry point they missed.
        log.warning("value refused by the database: %s", exc.orig)
        db.request_session().rollback()
        return problem(422, "Unprocessable Content",
                       "a value in the request cannot be stored (a NUL character, text longer "
                       "than its field, or a number out of range)")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "Internal Server Error",
                       "an unexpected error occurred; it has been logged")
