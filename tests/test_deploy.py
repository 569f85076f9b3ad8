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


def test_monitoring_profile_and_files() -> None:
    import json
    import shutil
    import subprocess

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"] == "9808"
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {c["job_name"]: c for c in prom["scrape_configs"]}
    assert jobs["backprop-worker"]["dns_sd_configs"][0]["port"] == 9808
    assert jobs["backprop-api"]["static_configs"][0]["targets"] == ["api:8000"]
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/backprop.json").read_text())
    assert dashboard["uid"] and all(p["targets"] for p in dashboard["panels"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"]}
    assert {"BackpropNoWorkers", "BackpropOldestQueuedJobTooOld", "BackpropJobFailureRatio",
            "BackpropPredictLatencyP99"} <= names
    promtool = shutil.which("promtool")  # Debian's prometheus package
    if promtool:
        done = subprocess.run([promtool, "check", "rules", "deploy/prometheus/alerts.yml"],
                              cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_gunicorn_workers_freeze_the_loaded_app_and_beat_on_tmpfs() -> None:
    """post_worker_init moves the loaded app out of the collector's sight (full collections
    were 80-90 ms pauses); the liveness file is on /dev/shm, not a journaled disk."""
    import gc
    import signal

    from service import gunicorn_conf

    if Path("/dev/shm").is_dir():
        assert gunicorn_conf.worker_tmp_dir == "/dev/shm"
    previous = signal.getsignal(signal.SIGTERM)
    gc.unfreeze()
    try:
        gunicorn_conf.post_worker_init(object())
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
        signal.signal(signal.SIGTERM, previous)


def test_gunicorn_builds_no_access_log_line() -> None:
    """The app logs each request; gunicorn's logger (kept for its error log) skips the access
    line, whose fields it would otherwise format on every request."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from service import gunicorn_conf

    cfg = Config()
    cfg.set("logger_class", gunicorn_conf.logger_class)
    cfg.set("logconfig_dict", gunicorn_conf.logconfig_dict)
    logger = cfg.logger_class(cfg)
    assert isinstance(logger, Logger)

    def no_atoms(*args: object) -> dict[str, str]:
        raise AssertionError("access-log fields were built")

    logger.atoms = no_atoms  # type: ignore[method-assign]
    logger.access(object(), object(), {}, 0.001)
