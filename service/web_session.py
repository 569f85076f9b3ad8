"""The dashboard's browser session: a signed, ``HttpOnly``, ``SameSite=Strict`` cookie that
names the API key the person signed in with (its row id, never the key itself). Every request
checks that key again, so revoking it signs the browser out."""

from __future__ import annotations

from flask import Flask, Request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from sqlalchemy.orm import Session

from .config import Settings
from .models import ApiKey

COOKIE = "bp_session"


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signing serializer it builds on every request:
    an API call carries no session cookie, so it gets an empty session straight away."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def configure(app: Flask, settings: Settings) -> None:
    app.session_interface = CookieSessions()
    app.config.update(SECRET_KEY=settings.secret(), SESSION_COOKIE_NAME=COOKIE,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_SECURE=settings.session_cookie_secure,
                      PERMANENT_SESSION_LIFETIME=12 * 3600)


def sign_in(key: ApiKey) -> None:
    session.clear()
    session["key_id"] = key.id
    session.permanent = True


def sign_out() -> None:
    session.clear()


def signed_in_key(s: Session) -> ApiKey | None:
    """The live key of this browser's session, or ``None``."""
    ident = session.get("key_id")
    if not isinstance(ident, str):
        return None
    row = s.get(ApiKey, ident)
    if row is None or row.revoked_at is not None:
        return None
    return row
