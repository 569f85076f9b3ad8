"""Faults on real processes: a worker killed mid-job, its whole process killed, attempts capped,
the broker down when a job is accepted, the database down, cancel of a running job."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import Stack

# Long enough that a job is still running when a test kills or cancels it on a quiet machine
# (a 30-epoch job could finish between two polls).
EPOCHS = 150
SPEC: dict[str, Any] = {
    "network": {"layers": [{"units": 96, "activation": "tanh"},
                           {"units": 96, "activation": "relu"}, {"units": 1}]},
    "training": {"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
                 "epochs": EPOCHS, "batch_size": 32, "seed": 5, "validation_split": 0.1},
}


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("faults")
    s = Stack(data_dir, f"sqlite:///{data_dir / 'service.db'}", "filesystem://",
              CHECKPOINT_EVERY_EPOCHS="3", CHECKPOINT_EVERY_SECONDS="3600",
              HEARTBEAT_TIMEOUT_SECONDS="4", REAPER_INTERVAL_SECONDS="1", MAX_ATTEMPTS="2")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def dataset_id(fault_stack: Stack) -> str:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(6000, 24)).round(4)
    y = (np.sin(X[:, :3].sum(axis=1)) + 0.1 * X[:, 3]).round(4).reshape(-1, 1)
    r = fault_stack.post("/v1/datasets", json={"name": "wave", "inputs": X.tolist(),
                                               "targets": y.tolist()})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def start_job(stack: Stack, dataset_id: str, spec: dict[str, Any] = SPEC) -> str:
    r = stack.post("/v1/jobs", json={"dataset_id": dataset_id, **spec})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_epoch(stack: Stack, job_id: str, epoch: int, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.get(f"/v1/jobs/{job_id}").json()
        if job["progress"]["epoch"] >= epoch or job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached epoch {epoch}")


def pool_children(stack: Stack) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(stack.procs["worker"].pid)], capture_output=True,
                         text=True)
    return [int(pid) for pid in out.stdout.split()]


def history_epochs(stack: Stack, job_id: str) -> list[int]:
    rows = stack.get(f"/v1/jobs/{job_id}/history", params={"limit": 1000}).json()["items"]
    return [row["epoch"] for row in rows]


def params(stack: Stack, model_id: str) -> np.ndarray:
    import io

    content = stack.get(f"/v1/models/{model_id}/weights").content
    with np.load(io.BytesIO(content), allow_pickle=False) as npz:
        return npz["params"]


def test_killed_pool_process_resumes_from_checkpoint(fault_stack: Stack,
                                                     dataset_id: str) -> None:
    reference = fault_stack.wait_job(start_job(fault_stack, dataset_id))
    assert reference["status"] == "succeeded" and reference["attempts"] == 1

    job_id = start_job(fault_stack, dataset_id)
    job = wait_epoch(fault_stack, job_id, 8)  # checkpoints at 3 and 6
    assert job["status"] == "running", job
    children = pool_children(fault_stack)
    assert children, "the prefork worker has a pool process"
    for pid in children:
        os.kill(pid, signal.SIGKILL)
    job = fault_stack.wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert history_epochs(fault_stack, job_id) == list(range(1, EPOCHS + 1))  # no gap, no duplicate
    np.testing.assert_array_equal(params(fault_stack, job["model_id"]),
                                  params(fault_stack, reference["model_id"]))


def test_killed_worker_process_is_reaped_and_resumed(fault_stack: Stack,
                                                     dataset_id: str) -> None:
    job_id = start_job(fault_stack, dataset_id)
    wait_epoch(fault_stack, job_id, 5)
    os.killpg(fault_stack.procs["worker"].pid, signal.SIGKILL)  # the whole worker, hard
    fault_stack.procs["worker"].wait()
    time.sleep(1)
    assert fault_stack.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    fault_stack.start(ready_timeout=None, only=("worker",))
    job = fault_stack.wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert history_epochs(fault_stack, job_id) == list(range(1, EPOCHS + 1))


def test_a_job_that_keeps_killing_its_worker_fails_with_a_reason(fault_stack: Stack,
                                                                 dataset_id: str) -> None:
    job_id = start_job(fault_stack, dataset_id)
    for attempt in (1, 2):
        deadline = time.monotonic() + 60
        while True:
            job = fault_stack.get(f"/v1/jobs/{job_id}").json()
            if job["attempts"] == attempt and job["status"] == "running":
                break
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        for pid in pool_children(fault_stack):
            os.kill(pid, signal.SIGKILL)
    job = fault_stack.wait_job(job_id)
    assert job["status"] == "failed"
    assert job["error"]["title"] == "Too many attempts"
    assert "2 times" in job["error"]["detail"]


def test_cancel_stops_a_running_job_and_keeps_its_history(fault_stack: Stack,
                                                          dataset_id: str) -> None:
    spec = {**SPEC, "training": {**SPEC["training"], "epochs": 2000}}
    job_id = start_job(fault_stack, dataset_id, spec)
    wait_epoch(fault_stack, job_id, 2)
    r = fault_stack.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202
    job = fault_stack.wait_job(job_id, timeout=30)
    assert job["status"] == "cancelled" and job["error"] is None
    epochs = history_epochs(fault_stack, job_id)
    assert epochs and epochs == list(range(1, len(epochs) + 1)) and len(epochs) < 2000
    assert fault_stack.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    # what it learnt is kept: the best epoch's weights (it has validation rows), partial
    model = fault_stack.get(f"/v1/models/{job['model_id']}").json()
    assert model["partial"] == {"reason": "cancelled", "epoch": len(epochs), "epochs": 2000}
    history = fault_stack.get(f"/v1/jobs/{job_id}/history?limit=1000").json()["items"]
    best = min(history, key=lambda r: r["val_loss"])
    assert model["metrics"]["epoch"] == best["epoch"]
    assert model["metrics"]["val_loss"] == best["val_loss"]
    keep_predicting_and_continue(fault_stack, model, len(epochs))


def keep_predicting_and_continue(stack: Stack, model: dict[str, Any], reached: int) -> None:
    """A partial model predicts, and a job trains it further from the epoch it reached."""
    rows = [[0.0] * model["inputs"]] * 2
    r = stack.post(f"/v1/models/{model['id']}/predict", json={"inputs": rows})
    assert r.status_code == 200 and len(r.json()["outputs"]) == 2, r.text
    more = stack.post("/v1/jobs", json={"continue_from": {"model_id": model["id"]},
                                        "training": {"epochs": 2}})
    assert more.status_code == 202, more.text
    done = stack.wait_job(more.json()["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert history_epochs(stack, done["id"]) == [reached + 1, reached + 2]


def test_job_accepted_while_the_broker_is_down_is_sent_later(fault_stack: Stack,
                                                             dataset_id: str,
                                                             tmp_path: Path) -> None:
    from service.app import create_app

    down = create_app({"data_dir": tmp_path, "database_url": fault_stack.database_url,
                       "broker_url": "redis://127.0.0.1:1/0"})
    client = down.test_client()
    small = {**SPEC, "training": {**SPEC["training"], "epochs": 2}}
    r = client.post("/v1/jobs", json={"dataset_id": dataset_id, **small},
                    headers={"Authorization": f"Bearer {fault_stack.key}"})
    assert r.status_code == 202, r.json
    assert client.get("/readyz").json["checks"]["broker"].startswith("unreachable")
    job = fault_stack.wait_job(r.json["id"], timeout=60)  # the worker's reaper sends it
    assert job["status"] == "succeeded", job


def test_database_down_is_a_503_problem(tmp_path: Path) -> None:
    from service.app import create_app

    app = create_app({"data_dir": tmp_path,
                      "database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"})
    client = app.test_client()
    r = client.get("/v1/datasets", headers={"Authorization": "Bearer whatever"})
    assert r.status_code == 503
    assert r.content_type == "application/problem+json"
    assert r.json["status"] == 503 and "database" in r.json["detail"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"]["database"].startswith("unreachable")


def test_a_job_over_its_time_limit_fails_saying_so_and_keeps_a_model(tmp_path: Path) -> None:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'service.db'}", "filesystem://",
              TASK_SOFT_TIME_LIMIT="2", TASK_TIME_LIMIT="8").start()
    try:
        rng = np.random.default_rng(2)
        X = rng.normal(size=(3000, 16)).round(3)
        ds = s.post("/v1/datasets", json={"name": "slow", "inputs": X.tolist(),
                                          "targets": X[:, :1].tolist()}).json()
        spec = {**SPEC, "training": {**SPEC["training"], "epochs": 100000}}
        job = s.wait_job(start_job(s, ds["id"], spec), timeout=60)
        assert job["status"] == "failed", job
        assert job["error"]["title"] == "Time limit exceeded"
        assert "TASK_SOFT_TIME_LIMIT" in job["error"]["detail"]
        # stopped at an epoch's end before the limit, with what it learnt kept
        model = s.get(f"/v1/models/{job['model_id']}").json()
        reached = job["progress"]["epoch"]
        assert model["partial"] == {"reason": "time_limit", "epoch": reached, "epochs": 100000}
        assert job["model_id"] in job["error"]["detail"]
        assert history_epochs(s, job["id"]) == list(range(1, reached + 1))
        keep_predicting_and_continue(s, model, reached)
    finally:
        s.stop()


# -- what the broker forgets or delivers twice, and long epochs ------------------------------


def start_worker(stack: Stack, name: str) -> subprocess.Popen[bytes]:
    """Another worker process beside the stack's (what scaling out runs), ready to consume."""
    from service.config import Settings
    from service.run import ROOT, commands

    cmd = [*commands(Settings.from_env(), stack.port, 1)["worker"], "-n", f"{name}@%h"]
    log_path = Path(stack.env["DATA_DIR"]) / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=stack.env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while "ready." not in log_path.read_text(errors="replace"):
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
    return proc


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def checkpoint_rows(stack: Stack) -> tuple[int, int]:
    """(jobs that reference a checkpoint, blobs that nothing references)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        referenced = conn.scalar(text("SELECT count(*) FROM jobs "
                                      "WHERE checkpoint_blob_id IS NOT NULL"))
        orphans = conn.scalar(text(
            "SELECT count(*) FROM blobs WHERE id NOT IN (SELECT blob_id FROM datasets) "
            "AND id NOT IN (SELECT blob_id FROM models) AND id NOT IN "
            "(SELECT state_blob_id FROM models WHERE state_blob_id IS NOT NULL) AND id NOT IN "
            "(SELECT checkpoint_blob_id FROM jobs WHERE checkpoint_blob_id IS NOT NULL)"))
    engine.dispose()
    return referenced, orphans


def test_cancel_after_a_lost_worker_leaves_no_checkpoint(fault_stack: Stack,
                                                         dataset_id: str) -> None:
    spec = {**SPEC, "training": {**SPEC["training"], "epochs": 2000}}
    job_id = start_job(fault_stack, dataset_id, spec)
    wait_epoch(fault_stack, job_id, 5)  # a checkpoint at 3
    os.killpg(fault_stack.procs["worker"].pid, signal.SIGKILL)
    fault_stack.procs["worker"].wait()
    assert checkpoint_rows(fault_stack)[0] == 1
    assert fault_stack.post(f"/v1/jobs/{job_id}/cancel").status_code == 202
    fault_stack.start(ready_timeout=None, only=("worker",))
    job = fault_stack.wait_job(job_id, timeout=60)
    assert job["status"] == "cancelled", job
    assert checkpoint_rows(fault_stack) == (0, 0)


@pytest.fixture()
def pair_stack(tmp_path: Path) -> Iterator[Stack]:
    """Two idle worker processes, a heartbeat timeout of 1 s: whatever is sent twice or looks
    stale is picked up at once by the other worker."""
    data_dir = tmp_path
    s = Stack(data_dir, f"sqlite:///{data_dir / 'service.db'}", "filesystem://",
              CHECKPOINT_EVERY_EPOCHS="3", HEARTBEAT_TIMEOUT_SECONDS="1",
              FLUSH_EVERY_SECONDS="0.25", REAPER_INTERVAL_SECONDS="0.3", MAX_ATTEMPTS="3",
              BLAS_THREADS="1")
    s.start()
    second = start_worker(s, "second")
    yield s
    stop_worker(second)
    s.stop()


def test_an_epoch_longer_than_the_heartbeat_timeout_is_not_a_dead_worker(
        pair_stack: Stack) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20000, 24)).round(3)
    r = pair_stack.post("/v1/datasets", json={"name": "wide", "inputs": X.tolist(),
                                              "targets": X[:, :1].tolist()})
    assert r.status_code == 201, r.text
    spec = {"network": {"layers": [{"units": 1024}, {"units": 1024}, {"units": 1}]},
            "training": {"epochs": 3, "batch_size": "full", "seed": 1}}
    job = pair_stack.wait_job(start_job(pair_stack, r.json()["id"], spec), timeout=300)
    rows = pair_stack.get(f"/v1/jobs/{job['id']}/history").json()["items"]
    assert max(row["seconds"] for row in rows) > 1.0, "the epochs must outlast the timeout"
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1, job  # never re-sent, never trained twice
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_the_task_of_a_running_job_sent_again_changes_nothing(pair_stack: Stack) -> None:
    from service.config import Settings
    from service.queue import make_celery, send_training

    rng = np.random.default_rng(1)
    X = rng.normal(size=(6000, 24)).round(4)
    y = (np.sin(X[:, :3].sum(axis=1)) + 0.1 * X[:, 3]).round(4).reshape(-1, 1)
    ds = pair_stack.post("/v1/datasets", json={"name": "wave", "inputs": X.tolist(),
                                               "targets": y.tolist()}).json()["id"]
    reference = pair_stack.wait_job(start_job(pair_stack, ds))
    assert reference["status"] == "succeeded", reference

    app = make_celery(Settings.from_env(broker_url=pair_stack.broker_url,
                                        data_dir=Path(pair_stack.env["DATA_DIR"])))
    job_id = start_job(pair_stack, ds)
    for epoch in (4, 8, 12, 16):  # past checkpoints at 3, 6, 9, ...: the idle worker takes it
        assert wait_epoch(pair_stack, job_id, epoch)["status"] == "running"
        send_training(app, job_id)
    job = pair_stack.wait_job(job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1
    assert history_epochs(pair_stack, job_id) == list(range(1, EPOCHS + 1))
    np.testing.assert_array_equal(params(pair_stack, job["model_id"]),
                                  params(pair_stack, reference["model_id"]))
    logs = "".join((Path(pair_stack.env["DATA_DIR"]) / name).read_text(errors="replace")
                   for name in ("worker.log", "second.log"))
    assert logs.count("dropping the duplicate delivery") >= 4, logs[-4000:]
    assert checkpoint_rows(pair_stack) == (0, 0)


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A redis-server of this test's own, without persistence, and a way to restart it."""
    from .conftest import free_port

    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
           "--dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL)]

    def wait_up() -> None:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def restart() -> None:
        procs[-1].kill()  # no persistence: everything it held is gone
        procs[-1].wait()
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        wait_up()

    wait_up()
    yield f"redis://127.0.0.1:{port}/0", restart
    for proc in procs:
        proc.kill()
        proc.wait()


def test_queued_jobs_run_after_the_broker_forgot_them(private_redis: tuple[str, Any],
                                                       tmp_path: Path) -> None:
    import redis

    broker, restart = private_redis
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'service.db'}", broker,
              REAPER_INTERVAL_SECONDS="1").start()
    try:
        ds = s.post("/v1/datasets", json={"name": "xor", "inputs": [[0, 0], [0, 1], [1, 0],
                                                                     [1, 1]],
                                          "targets": [[0], [1], [1], [0]]}).json()["id"]
        stop_worker(s.procs["worker"])
        small = {"network": {"layers": [{"units": 4}, {"units": 1}]},
                 "training": {"epochs": 3, "batch_size": "full"}}
        ids = [start_job(s, ds, small) for _ in range(4)]
        assert redis.Redis.from_url(broker).llen("training") == 4
        restart()
        assert redis.Redis.from_url(broker).llen("training") == 0
        s.start(ready_timeout=None, only=("worker",))
        for job_id in ids:
            job = s.wait_job(job_id, timeout=60)
            assert job["status"] == "succeeded" and job["attempts"] == 1, job
    finally:
        s.stop()
