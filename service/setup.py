"""Start-up steps shared by ``make run``, the docker-compose services and the tests:
schema migration (``alembic upgrade head``, never ``create_all``) and API-key bootstrap."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import func, select

from . import auth, db
from .config import Settings
from .models import ApiKey

ROOT = Path(__file__).resolve().parent.parent


def migrate(database_url: str) -> None:
    """Bring the schema at ``database_url`` to the newest migration."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = database_url
    command.upgrade(cfg, "head")


def bootstrap_keys(settings: Settings, create_first: bool = False) -> str | None:
    """Register ``BOOTSTRAP_API_KEY`` for the default tenant; with ``create_first``, make a key
    when there is none at all. Returns a newly made key (to show once), else ``None``."""
    db.configure(settings.database_url)
    with db.session_scope() as s:
        if settings.bootstrap_api_key:
            auth.create_key(s, auth.DEFAULT_TENANT, "bootstrap", key=settings.bootstrap_api_key)
        if create_first and not s.scalar(select(func.count()).select_from(ApiKey)):
            return auth.create_key(s, auth.DEFAULT_TENANT, "first key")
    return None
