"""Claims and the reaper in-process, on a real database and kombu's filesystem broker: a live
holder is never taken over, a gone one is; every final state drops the checkpoint; messages the
broker lost are sent again, once."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from service import db, storage
from service.models import Blob, Job, utcnow
from tests.service.helpers import QUICK, XOR, make_dataset, make_job, run
from workers import claim as claims
from workers.reaper import Reaper


def set_job(job_id: str, **values: Any) -> None:
    with db.session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def job_row(job_id: str) -> Job:
    with db.session_scope() as s:
        return s.get(Job, job_id)


def with_checkpoint(job_id: str) -> str:
    with db.session_scope() as s:
        blob = storage.put(s, b"not read by these tests")
        s.flush()
        s.execute(update(Job).where(Job.id == job_id).values(checkpoint_blob_id=blob.id))
        return blob.id


def blob_exists(blob_id: str) -> bool:
    with db.session_scope() as s:
        return s.get(Blob, blob_id) is not None


def a_gone_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def job_id(app: Any, client: Any, auth: dict[str, str]) -> str:
    ds = make_dataset(client, auth, XOR)
    return make_job(client, auth, ds["id"], training={**QUICK, "epochs": 5})["id"]


def running(job_id: str, worker: str, age: float, attempts: int = 1) -> None:
    set_job(job_id, status="running", attempts=attempts, started_at=utcnow(),
            worker_id=worker, heartbeat_at=utcnow() - timedelta(seconds=age))


def test_a_duplicate_delivery_leaves_a_live_holder_alone(app: Any, job_id: str) -> None:
    settings = app.config["SETTINGS"]
    running(job_id, "another-machine:4242", age=1)
    assert run(app, job_id) is None
    job = job_row(job_id)
    assert (job.status, job.attempts, job.worker_id) == ("running", 1, "another-machine:4242")
    running(job_id, f"{claims.HOST}:1", age=1)  # pid 1 exists: a live process of this host
    assert run(app, job_id) is None and job_row(job_id).attempts == 1
    # Stale: the holder is gone, whoever it was.
    running(job_id, "another-machine:4242", age=settings.heartbeat_timeout_seconds + 1)
    assert run(app, job_id) == "succeeded"
    assert job_row(job_id).attempts == 2


def test_a_gone_process_of_this_machine_is_taken_over_at_once(app: Any, job_id: str) -> None:
    running(job_id, f"{claims.HOST}:{a_gone_pid()}", age=0)
    assert run(app, job_id) == "succeeded"
    assert job_row(job_id).attempts == 2


def test_an_attempt_that_ended_in_this_process_is_taken_over(app: Any, job_id: str) -> None:
    running(job_id, claims.worker_id(), age=0)  # e.g. the task is retried after a DB error
    assert run(app, job_id) == "succeeded"


@pytest.mark.parametrize("path", ["cancel", "attempts"])
def test_a_claim_that_ends_a_job_drops_its_checkpoint(app: Any, job_id: str, path: str) -> None:
    settings = app.config["SETTINGS"]
    running(job_id, "gone:1", age=settings.heartbeat_timeout_seconds + 1,
            attempts=settings.max_attempts if path == "attempts" else 1)
    set_job(job_id, cancel_requested=path == "cancel")
    blob_id = with_checkpoint(job_id)
    assert run(app, job_id) is None
    job = job_row(job_id)
    assert job.status == ("cancelled" if path == "cancel" else "failed")
    assert job.checkpoint_blob_id is None and not blob_exists(blob_id)


# -- the reaper, on a database and a broker of its own ---------------------------------------


@pytest.fixture()
def own(tmp_path: Path) -> Any:
    from service.app import create_app
    from service.setup import migrate

    url = f"sqlite:///{tmp_path / 'own.db'}"
    migrate(url)
    app = create_app({"data_dir": tmp_path, "database_url": url, "broker_url": "filesystem://",
                      "heartbeat_timeout_seconds": 5.0})
    app.config["TESTING"] = True
    return app


def messages(app: Any) -> list[Path]:
    return sorted((app.config["SETTINGS"].broker_folder / "queue").glob("*.msg"))


def own_jobs(app: Any, n: int) -> tuple[list[str], dict[str, str]]:
    from service import auth as keys

    with db.session_scope() as s:
        headers = {"Authorization": f"Bearer {keys.create_key(s, 'reaper')}"}
    client = app.test_client()
    ds = make_dataset(client, headers, XOR)
    return [make_job(client, headers, ds["id"], training=QUICK)["id"] for _ in range(n)], headers


def test_the_reaper_sends_again_what_the_broker_lost_once(own: Any) -> None:
    reaper = Reaper(own.config["SETTINGS"], own.extensions["celery"])
    ids, _ = own_jobs(own, 3)
    assert len(messages(own)) == 3
    assert reaper.run_once()["resent"] == 0
    for path in messages(own)[:2]:  # the broker forgets two of them
        path.unlink()
    assert reaper.run_once()["resent"] == 0  # one look may catch a delivery in flight
    assert reaper.run_once()["resent"] == 3  # every job that was waiting at both looks
    assert len(messages(own)) == 4  # one duplicate, harmless
    for _ in range(3):
        assert reaper.run_once()["resent"] == 0  # and never again while nothing is lost
    assert [run(own, job_id) for job_id in ids] == ["succeeded"] * 3
    # The duplicate is dropped by its claim: the job ran once.
    assert all(job_row(job_id).attempts == 1 for job_id in ids)


def test_the_reaper_takes_back_a_job_whose_worker_died(own: Any) -> None:
    reaper = Reaper(own.config["SETTINGS"], own.extensions["celery"])
    (job_id,), _ = own_jobs(own, 1)
    for path in messages(own):
        path.unlink()
    running(job_id, "gone:1", age=6)
    assert reaper.run_once()["requeued"] == 1
    job = job_row(job_id)
    assert job.status == "queued" and job.enqueued_at is not None and len(messages(own)) == 1
    assert run(own, job_id) == "succeeded" and job_row(job_id).attempts == 2


def test_the_reaper_ends_a_stale_cancelled_job_and_sweeps_leaked_checkpoints(own: Any) -> None:
    reaper = Reaper(own.config["SETTINGS"], own.extensions["celery"])
    (stale, cancelled), headers = own_jobs(own, 2)
    running(stale, "gone:1", age=6)
    set_job(stale, cancel_requested=True)
    stale_blob = with_checkpoint(stale)
    # A queued job (e.g. taken back from a dead worker) cancelled through the API.
    cancelled_blob = with_checkpoint(cancelled)
    assert own.test_client().post(f"/v1/jobs/{cancelled}/cancel",
                                  headers=headers).status_code == 202
    out = reaper.run_once()
    assert out["ended"] == 1 and out["checkpoints"] == 1
    assert job_row(stale).status == "cancelled"
    assert not blob_exists(stale_blob) and not blob_exists(cancelled_blob)
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Job)
                        .where(Job.checkpoint_blob_id.is_not(None))) == 0
