"""Metrics, logs and files of the real processes: /metrics after real jobs and requests, the
worker's endpoint, what the dashboard and alert rules use, a failed job in the worker's log, and
a fresh `make run` that writes nothing outside DATA_DIR and says nothing alarming."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.run import ROOT

from .conftest import Stack, free_port
from .test_e2e import XOR_SPEC

XOR = {"name": "xor", "inputs": [[0, 0], [0, 1], [1, 0], [1, 1]], "targets": [[0], [1], [1], [0]]}
DIVERGES = {"optimizer": {"name": "sgd", "learning_rate": 1e30}, "epochs": 50,
            "batch_size": "full", "standardize": False, "seed": 1}


@pytest.fixture(scope="module", params=["sqlite+filesystem", "postgres+redis"])
def ops_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("ops")
    if request.param == "sqlite+filesystem":
        db_url, broker = f"sqlite:///{data_dir / 'service.db'}", "filesystem://"
    else:
        import redis

        db_url = request.getfixturevalue("postgres_url")
        broker = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/" + \
            os.environ.get("TEST_REDIS_DB", "15")
        redis.Redis.from_url(broker).flushdb()
    s = Stack(data_dir, db_url, broker, WORKER_METRICS_PORT=str(free_port()),
              WORKER_HEARTBEAT_SECONDS="1", METRICS_TOKEN="tok")
    s.start()
    yield s
    s.stop()


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name of each sample -> {labels: value}."""
    resp = requests.get(url, headers={"Authorization": "Bearer tok"}, timeout=10)
    assert resp.status_code == 200, resp.text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for k, v in samples.get(name, {}).items()
               if set(labels.items()) <= set(k))


def run_jobs(stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    ds = stack.post("/v1/datasets", json=XOR).json()["id"]
    good = stack.post("/v1/jobs", json={"dataset_id": ds, **XOR_SPEC}).json()
    bad = stack.post("/v1/jobs", json={"dataset_id": ds, "network": XOR_SPEC["network"],
                                       "training": DIVERGES}).json()
    return stack.wait_job(good["id"]), stack.wait_job(bad["id"])


@pytest.fixture(scope="module")
def finished(ops_stack: Stack) -> tuple[dict[str, Any], dict[str, Any]]:
    good, bad = run_jobs(ops_stack)
    assert good["status"] == "succeeded", good
    assert bad["status"] == "failed" and bad["error"]["title"] == "Training diverged", bad
    for _ in range(3):
        r = ops_stack.post(f"/v1/models/{good['model_id']}/predict",
                           json={"inputs": [[0, 0], [1, 1]]})
        assert r.status_code == 200, r.text
    ops_stack.get("/v1/jobs/job_nope")
    return good, bad


def test_metrics_after_real_jobs_and_requests(ops_stack: Stack, finished: Any) -> None:
    good, _ = finished
    assert requests.get(ops_stack.base + "/metrics", timeout=10).status_code == 401
    api = scrape(ops_stack.base + "/metrics")
    worker_url = f"http://127.0.0.1:{ops_stack.env['WORKER_METRICS_PORT']}/metrics"
    worker = scrape(worker_url)
    assert requests.get(worker_url, timeout=10).status_code == 401

    # requests: by route template, summed over both gunicorn workers
    predict = {"route": "/v1/models/<model_id>/predict", "method": "POST", "status": "200"}
    assert value(api, "backprop_http_requests_total", **predict) == 3
    assert value(api, "backprop_http_request_duration_seconds_count", **predict) == 3
    assert value(api, "backprop_http_requests_total", route="/v1/jobs/<job_id>",
                 status="404") >= 1
    assert not any(re.search(r"(job|mdl)_[0-9a-f]|nope", dict(k)["route"])
                   for k in api["backprop_http_requests_total"])
    # predictions and the model cache (each web process misses once at most)
    assert value(api, "backprop_predict_duration_seconds_count") == 3
    assert value(api, "backprop_predict_rows_total") == 6
    misses = value(api, "backprop_model_cache_lookups_total", result="miss")
    assert 1 <= misses <= 2
    assert value(api, "backprop_model_cache_lookups_total", result="hit") == 3 - misses
    # service-wide gauges, read at scrape time
    assert value(api, "backprop_jobs", status="succeeded") >= 1
    assert value(api, "backprop_jobs", status="failed") >= 1
    assert value(api, "backprop_jobs", status="queued") == 0
    assert value(api, "backprop_oldest_queued_job_age_seconds") == 0
    assert value(api, "backprop_workers_alive") == 1
    assert value(api, "backprop_broker_up") == 1
    assert value(api, "backprop_queue_length") == 0
    # the worker's own endpoint: jobs
    assert value(worker, "backprop_jobs_finished_total", status="succeeded") >= 1
    assert value(worker, "backprop_jobs_finished_total", status="failed") >= 1
    assert value(worker, "backprop_job_duration_seconds_count", status="succeeded") >= 1
    assert 0 < value(worker, "backprop_job_duration_seconds_sum", status="succeeded") < 120
    assert value(worker, "backprop_job_queue_wait_seconds_count") >= 2
    assert value(worker, "backprop_epochs_trained_total") >= good["progress"]["epoch"]
    assert value(worker, "backprop_job_attempts_beyond_first_total") == 0
    check_deploy_names(set(api) | set(worker))


def check_deploy_names(exported: set[str]) -> None:
    """Every metric the dashboard and the alert rules use is really exported."""
    used: set[str] = set()
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/backprop.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bbackprop_[a-z_]+", target["expr"]))
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            used |= set(re.findall(r"\bbackprop_[a-z_]+", rule["expr"]))
    assert len(used) >= 12
    assert used <= exported, used - exported


def test_worker_logs_a_failed_job_with_its_reason(ops_stack: Stack, finished: Any) -> None:
    good, bad = finished
    log = ops_stack.logs("worker")
    line = next(ln for ln in log.splitlines() if bad["id"] in ln and "job.failed" in ln)
    assert "WARNING" in line and "Training diverged" in line and "attempt=1" in line
    assert "worker=celery@" in line
    assert any(good["id"] in ln and "job.succeeded" in ln for ln in log.splitlines())
    assert "succeeded in" not in log  # Celery's own line says nothing of the job's outcome


def test_stop_logs_no_error(ops_stack: Stack, finished: Any) -> None:
    ops_stack.stop()
    for name in ("api", "worker"):
        log = ops_stack.logs(name)
        assert " ERROR " not in log and "Traceback" not in log, log[-3000:]
        assert "exited with" not in log, log[-3000:]
    ops_stack.start()


def _files(root: Path, skip: tuple[str, ...]) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if not str(p.relative_to(root)).startswith(skip)}


def test_a_fresh_make_run_writes_only_under_data_dir(tmp_path: Path) -> None:
    """`make run` in a fresh copy of the repository (the real .venv linked in), Ctrl-C."""
    copy, home = tmp_path / "repo", tmp_path / "home"
    home.mkdir()
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        if (ROOT / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, copy / rel)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    before = _files(copy, (".venv",))
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATA_DIR", "DATABASE_URL", "BROKER_URL", "PROMETHEUS",
                                "XDG_RUNTIME_DIR", "BOOTSTRAP"))}
    env.update(HOME=str(home), PORT=str(port), WORKER_METRICS_PORT=str(free_port()))
    proc = subprocess.Popen(["make", "-o", ".venv/.installed", "run"], cwd=copy, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        key = (copy / "var" / "api-key.txt").read_text().strip()
        r = requests.post(f"http://127.0.0.1:{port}/v1/datasets", json=XOR, timeout=10,
                          headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 201, r.text
        time.sleep(2)  # the worker is up too
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode in (0, 2, -signal.SIGINT), out  # make dies of the interrupt
    assert (copy / "var" / "service.db").exists(), out
    assert _files(copy, (".venv", "var")) == before - {"var"}, out
    assert list(home.iterdir()) == [], list(home.rglob("*"))
    for line in out.splitlines():
        # (Celery's warning for a worker run as root only appears when the tests run as root)
        alarming = re.search(r"\b(ERROR|CRITICAL|Traceback|[Ww]arning|WARNING)\b", line)
        assert not alarming or "superuser" in line or "SecurityWarning" in line or \
            line.startswith(("absolutely not", "Please specify", "User information",
                             "  _warn_or_raise")), out
