"""Signing in and out, and ``/``."""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for

from .. import auth, db, web_session
from . import bp


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or a scheme) may follow the sign-in."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return url_for("pages.jobs_list")


@bp.get("/")
def index() -> Any:
    """The dashboard when signed in, else the sign-in page (which links the API docs)."""
    return redirect(url_for("pages.jobs_list" if g.signed_in else "pages.signin"))


@bp.route("/signin", methods=["GET", "POST"])
def signin() -> Any:
    error = None
    if request.method == "POST":
        key = auth.find_key(db.request_session(), request.form.get("api_key", "").strip())
        if key is not None:
            web_session.sign_in(key)
            return redirect(_safe_next(request.form.get("next")))
        error = "That API key is not valid or has been revoked."
    return render_template("signin.html", error=error, next=request.values.get("next", "")), \
        (401 if error else 200)


@bp.post("/signout")
def signout() -> Any:
    web_session.sign_out()
    return redirect(url_for("pages.signin"))
