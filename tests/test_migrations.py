"""The models and the migrations agree: a migrated database shows no drift, on every backend,
and the migrations form one line (a single head)."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.setup import ROOT


def _config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def test_one_head() -> None:
    assert len(ScriptDirectory.from_config(_config("sqlite://")).get_heads()) == 1


@pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
def test_no_drift(backend: str, request: pytest.FixtureRequest) -> None:
    command.check(_config(request.getfixturevalue(backend)))  # raises on any difference
