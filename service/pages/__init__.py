"""Pages for people: sign in with an API key, then jobs with live curves, datasets and models
with a predict form. HTML rendered by Flask; the views hand the templates finished values
(``present``); ``static/`` holds the one stylesheet, the page scripts and the vendored chart
library. State-changing forms carry a CSRF token (Flask-WTF)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from .. import db, web_session

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/assets")
csrf = CSRFProtect()
PUBLIC = {"pages.signin", "pages.index", "pages.static"}


def register(app: Flask) -> None:
    # The API's POSTs authenticate with a bearer header and are not CSRF-checked; the pages'
    # forms are, in ``_guard`` below.
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None)
    csrf.init_app(app)
    from . import data, jobs, session  # noqa: F401 - the views register themselves on bp

    app.register_blueprint(bp)


@bp.before_request
def _guard() -> Any:
    if request.endpoint == "pages.static":
        return None  # the stylesheet and scripts: no session, no database
    if request.method == "POST":
        csrf.protect()
    key = web_session.signed_in_key(db.request_session())
    g.signed_in = key is not None
    if key is not None:
        g.tenant_id, g.key_id, g.key_prefix = key.tenant_id, key.id, key.prefix
    elif request.endpoint not in PUBLIC:
        return redirect(url_for("pages.signin", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def _headers(resp: Any) -> Any:
    # Nothing on these pages comes from elsewhere; say so to the browser too.
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                            "frame-ancestors 'none'; form-action 'self'")
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> Any:
    return render_template("error.html", title="Form expired",
                           detail=f"{exc.description} Reload the page and try again."), 400


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    return render_template("error.html", title=exc.name, detail=exc.description), exc.code
