"""docker-compose.yml runs the same commands that `make run` and the end-to-end tests run."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.config import Settings
from service.run import commands

ROOT = Path(__file__).resolve().parents[1]


def test_compose_runs_the_tested_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    tested = commands(Settings.from_env(), port=8000, web_workers=4, host="0.0.0.0")
    for name in ("api", "worker"):
        command = [part.replace("${WEB_CONCURRENCY:-4}", "4") for part in
                   services[name]["command"]]
        assert command[0] == "python"
        assert command[1:] == tested[name][1:], name
    assert services["migrate"]["command"] == ["python", "-m", "service.cli", "migrate"]
    for name in ("postgres", "redis", "api", "worker"):
        assert "healthcheck" in services[name], name
    assert services["api"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"


def test_dockerfile_default_command_is_the_api() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '"service.app:create_app()"' in text
    assert 'pip install ".[${EXTRAS}]"' in text and "ARG EXTRAS=" in text
