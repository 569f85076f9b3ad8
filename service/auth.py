"""API keys: random tokens shown once, stored as sha256, compared in constant time, revocable.

Web processes serve authentication from a ``KeyCache``: a key found valid is trusted for
``CACHE_TTL_SECONDS`` (1 s by default) after the database said so, so a revoked key (or a
deleted tenant's key) stops working in every web process within that time; a busy key is looked
up again each half of that time, in the background (``service.trust_cache``), while its
requests are served. A key not found, or
revoked, is looked up on every request (a new key works at once).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import db
from .errors import APIError
from .models import ApiKey, Tenant, new_id, utcnow
from .trust_cache import TrustCache

KEY_PREFIX = "bp_"
DEFAULT_TENANT = "default"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(id=new_id("tn"), name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(session: Session, tenant_name: str = DEFAULT_TENANT, name: str = "",
               key: str | None = None) -> str:
    """Register a key for ``tenant_name`` (made if missing); return the plain key (once)."""
    key = key or KEY_PREFIX + secrets.token_urlsafe(32)
    tenant = get_or_create_tenant(session, tenant_name)
    digest = hash_key(key)
    existing = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if existing is not None:
        if existing.tenant_id != tenant.id:
            raise ValueError("that key already belongs to another tenant")
        existing.revoked_at = None
        return key
    session.add(ApiKey(id=new_id("key"), tenant_id=tenant.id, key_hash=digest,
                       prefix=key[:10], name=name))
    session.flush()
    return key


def revoke_key(session: Session, key_or_prefix: str) -> int:
    """Revoke by the full key or by its displayed prefix; returns how many keys were revoked."""
    rows = session.scalars(select(ApiKey).where(
        (ApiKey.key_hash == hash_key(key_or_prefix)) | (ApiKey.prefix == key_or_prefix))).all()
    now: datetime = utcnow()
    for row in rows:
        row.revoked_at = now
    return len(rows)


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="backprop"'}


class Identity(NamedTuple):
    """Who a valid key speaks for: its tenant, and the key's own row id (stream caps)."""

    tenant_id: str
    key_id: str


def find_key(session: Session, token: str) -> ApiKey | None:
    """The live (not revoked) key row for a plain key, else ``None``."""
    return _live_row(session, hash_key(token))


def _live_row(session: Session, digest: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        return None
    return row


def bearer_digest(header: str | None) -> str:
    """The sha256 of the key in an ``Authorization: Bearer <key>`` header, else a 401 problem."""
    if not header:
        raise APIError(401, "Unauthorized", "missing Authorization header; send "
                       "'Authorization: Bearer <api key>'", headers=CHALLENGE)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "Unauthorized", "the Authorization header must be "
                       "'Bearer <api key>'", headers=CHALLENGE)
    return hash_key(token)


def identity_of(session: Session, digest: str) -> Identity:
    """The tenant and key of the valid key with this digest, else a 401 problem."""
    ident = _identity(session, digest)
    if ident is None:
        raise _invalid()
    return ident


def _identity(session: Session, digest: str) -> Identity | None:
    row = _live_row(session, digest)
    return None if row is None else Identity(row.tenant_id, row.id)


def _identity_in_own_session(digest: str) -> Identity | None:
    """``_identity`` for a background refresh (not in a request: its own session)."""
    with db.new_session() as session:
        return _identity(session, digest)


def _invalid() -> APIError:
    return APIError(401, "Unauthorized", "the API key is not valid or has been revoked",
                    headers=CHALLENGE)


def authenticate(session: Session, header: str | None) -> str:
    """The tenant id for an ``Authorization: Bearer <key>`` header, else a 401 problem
    (always asks the database; web requests go through ``KeyCache``)."""
    return identity_of(session, bearer_digest(header)).tenant_id


class KeyCache:
    """Key digest -> ``Identity`` for this process (a ``TrustCache``): a key is trusted for
    ``ttl`` seconds after the database said it was valid; at most ``size`` entries. Only valid
    keys are cached. ``clock`` is ``time.monotonic`` (tests move it on)."""

    def __init__(self, ttl: float, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.trusted: TrustCache[str, Identity] = TrustCache(ttl, size, clock)

    def authenticate(self, header: str | None, session: Callable[[], Session]) -> Identity:
        """Like ``authenticate``; ``session()`` is called only when the key must be looked up."""
        digest = bearer_digest(header)
        ident = self.trusted.get(digest, lambda: _identity(session(), digest),
                                 refresh=lambda: _identity_in_own_session(digest))
        if ident is None:
            raise _invalid()
        return ident
