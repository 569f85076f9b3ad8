"""The Flask application factory. Nothing runs at import time."""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

import orjson
from flask import Request, Response, redirect, request
from flask.json.provider import JSONProvider
from flask_openapi3 import Info, OpenAPI
from pydantic import ValidationError
from threadpoolctl import threadpool_limits
from werkzeug.exceptions import UnsupportedMediaType

from . import db, errors, observe, ratelimit, wake, web_session
from .config import Settings
from .openapi_doc import finish_document
from .queue import make_celery

log = logging.getLogger(__name__)


class OrjsonProvider(JSONProvider):
    """Fast JSON; parsing rejects NaN, Infinity and numbers that overflow to infinity."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY),
                                        mimetype="application/json")


class APIRequest(Request):
    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise UnsupportedMediaType(
                f"the body must be JSON (Content-Type: application/json), got "
                f"{self.mimetype or 'no Content-Type'!r}")
        raise errors.APIError(400, "Malformed JSON",
                              f"the body is not valid JSON: {e}. (NaN, Infinity and numbers "
                              "too large for a double are not accepted.)")


class ServiceApp(OpenAPI):
    """flask-openapi3's app, with the document finished for problem details and auth."""

    request_class = APIRequest
    _SYNC_CACHE_SIZE = 4096

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask asks this of every hook and view on every request (``inspect`` each time);
        the answer for a plain function never changes, so it is remembered."""
        if type(func) is not types.FunctionType:
            return super().ensure_sync(func)
        cache: dict[Any, Callable[..., Any]] = self.__dict__.setdefault("_sync_cache", {})
        known = cache.get(func)
        if known is None:
            known = super().ensure_sync(func)
            if len(cache) < self._SYNC_CACHE_SIZE:
                cache[func] = known
        return known

    @property
    def api_doc(self) -> dict[str, Any]:
        if not self.spec_json:
            self.generate_spec_json()
            finish_document(self.spec_json)
        return self.spec_json


def _validation_error(exc: ValidationError) -> Response:
    title = exc.title or ""
    prefix: list[str | int] = []
    if title.endswith("Query"):
        prefix = ["query"]
    elif title.endswith("Path"):
        prefix = ["path"]
    elif title.endswith("Header"):
        prefix = ["header"]
    err = errors.validation_problem(exc, prefix)
    return errors.problem(err.status, err.title, err.detail, err.errors)


def create_app(overrides: dict[str, Any] | None = None) -> ServiceApp:
    """Build the app. ``overrides`` are settings (see ``Settings``) for tests."""
    settings = Settings.from_env(**(overrides or {}))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = ServiceApp(
        __name__,
        info=Info(title="backprop-service", version="1.0.0",
                  description="Train multi-layer perceptrons by backpropagation (NumPy) on "
                              "a Celery worker and serve their predictions."),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_prefix="/docs",
        doc_url="/openapi.json",
        validation_error_callback=_validation_error,
    )
    if settings.api_blas_threads > 0:
        # Predictions are small matrix products: one BLAS thread per web worker process avoids
        # oversubscribing the cores (and OpenBLAS's multi-thread stalls).
        threadpool_limits(settings.api_blas_threads)
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_request_bytes
    app.config["SETTINGS"] = settings
    app.extensions["celery"] = make_celery(settings)
    db.configure(settings.database_url)
    wake.configure(wake.redis_url_from(settings.redis_url, settings.broker_url))
    web_session.configure(app, settings)
    # Swagger UI sends the document to validator.swagger.io unless told not to: /docs makes
    # no request outside the service.
    app.config["SWAGGER_CONFIG"] = {"validatorUrl": None}

    errors.register(app)
    observe.register(app)  # request id, latency metrics, one log line per request

    from .api import datasets, export, inspect, jobs, models, ops, sweeps
    from .api import events as _events  # noqa: F401 - its view goes on the jobs blueprint
    from .pages import register as register_pages

    ratelimit.init_app(app, settings)  # checked after authentication (api/common.py)
    for module in (datasets, jobs, models, export, sweeps, inspect):
        app.register_api(module.bp)
    app.register_api(ops.bp)
    register_pages(app)

    @app.get("/openapi.json", doc_ui=False)
    def openapi_json() -> Response:
        return app.json.response(app.api_doc)

    @app.get("/docs", doc_ui=False)
    def docs() -> Any:
        return redirect("/docs/swagger", code=302)

    app.teardown_appcontext(db.close_request_session)

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/v1"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    return app
