"""API keys: random tokens shown once, stored as sha256, compared in constant time, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import APIError
from .models import ApiKey, Tenant, new_id, utcnow

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


def authenticate(session: Session, header: str | None) -> str:
    """The tenant id for an ``Authorization: Bearer <key>`` header, else a 401 problem."""
    return authenticate_key(session, header).tenant_id


def find_key(session: Session, token: str) -> ApiKey | None:
    """The live (not revoked) key row for a plain key, else ``None``."""
    digest = hash_key(token)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        return None
    return row


def authenticate_key(session: Session, header: str | None) -> ApiKey:
    """The key row for an ``Authorization: Bearer <key>`` header, else a 401 problem."""
    challenge = {"WWW-Authenticate": 'Bearer realm="backprop"'}
    if not header:
        raise APIError(401, "Unauthorized", "missing Authorization header; send "
                       "'Authorization: Bearer <api key>'", headers=challenge)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "Unauthorized", "the Authorization header must be "
                       "'Bearer <api key>'", headers=challenge)
    row = find_key(session, token)
    if row is None:
        raise APIError(401, "Unauthorized", "the API key is not valid or has been revoked",
                       headers=challenge)
    return row
