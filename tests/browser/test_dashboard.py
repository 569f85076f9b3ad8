"""The dashboard as a person uses it: sign in, watch a job's curves grow, cancel, predict;
another tenant sees nothing; a 100,000-epoch history draws without freezing the page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from service.run import ROOT
from tests.e2e.conftest import Stack

from .conftest import Browser

BLOBS = {"name": "blobs", "feature_names": ["u", "v"],
         "inputs": [[0, 0], [0.2, 0.1], [0.1, 0.3], [5, 5], [5.2, 4.9], [4.8, 5.1],
                    [0, 5], [0.3, 5.2], [-0.1, 4.8]],
         "labels": ["a", "a", "a", "b", "b", "b", "c", "c", "c"]}
DASH = "\u2013"  # a missing value
SHOTS = os.environ.get("SCREENSHOTS_DIR")  # e.g. docs/ to refresh the README's pictures


def slow_job(stack: Stack, epochs: int, rows: int = 600) -> str:
    """A job of small epochs that takes a while (online SGD on a few hundred rows)."""
    inputs = [[i / rows, (i * 7 % rows) / rows] for i in range(rows)]
    labels = ["hi" if x + y > 1 else "lo" for x, y in inputs]
    ds = stack.post("/v1/datasets", json={"name": "diag", "inputs": inputs, "labels": labels})
    r = stack.post("/v1/jobs", json={
        "dataset_id": ds.json()["id"],
        "network": {"layers": [{"units": 16}, {"units": 2}]},
        "training": {"optimizer": {"name": "sgd", "learning_rate": 0.02, "momentum": 0.9},
                     "epochs": epochs, "batch_size": 1, "validation_split": 0.2, "seed": 5,
                     "kernel": "numpy",  # the compiled kernel would finish before the page looks
                     "lr_schedule": {"name": "exponential", "gamma": 0.99}}})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def points(web: Browser) -> int:
    return int(web.page.get_attribute("#points", "data-points") or 0)


def wait_until(check: Any, timeout: float = 60.0, what: str = "") -> None:
    """Poll from Python: the pages' CSP (rightly) forbids the eval of wait_for_function."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.2)


def test_sign_in_and_the_front_door(web: Browser) -> None:
    page = web.page
    page.goto("/")
    assert page.url.endswith("/signin")
    assert page.locator("a[href='/docs']").count() >= 1
    page.fill("#api_key", "bp_not-a-key")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("[role=alert]")
    web.sign_in()
    cookie = next(c for c in web.context.cookies() if c["name"] == "bp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.goto("/")
    assert page.url.endswith("/jobs")
    page.goto("/docs")  # Swagger UI loads with everything from the service
    page.wait_for_selector(".swagger-ui .information-container", timeout=30_000)
    page.goto("/jobs")
    page.click("button:has-text('Sign out')")
    page.goto("/jobs")
    assert "/signin" in page.url


# Enough epochs (several seconds of online SGD) that the page sees the curve grow at least
# twice between the writer's flushes, on a fast quiet machine too (150 was not: [70, 70, 150]).
LIVE_EPOCHS = 600


@pytest.mark.slow
def test_watch_a_job_live_then_see_it_finished(web: Browser, stack: Stack,
                                               tmp_path: Path) -> None:
    job_id = slow_job(stack, epochs=LIVE_EPOCHS)
    web.sign_in()
    page = web.page
    page.goto(f"/jobs/{job_id}")
    wait_until(lambda: points(web) > 0, what="the first epochs")
    seen = [points(web)]
    deadline = time.monotonic() + 120
    while page.inner_text("#status") != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.5)
        seen.append(points(web))
        if len(set(seen)) == 3 and SHOTS:
            page.screenshot(path=f"{SHOTS}/job-running.png", full_page=True)
    assert len(set(seen)) >= 3, f"the curve did not grow while the job ran: {seen}"
    wait_until(lambda: points(web) == LIVE_EPOCHS, what="every epoch")
    assert page.inner_text("#status") == "succeeded"
    assert page.locator("#cancel").count() == 0
    page.reload()  # a finished job: the same page, from the history
    wait_until(lambda: points(web) == LIVE_EPOCHS, what="every epoch")
    assert page.locator("#chart-loss canvas").count() == 1
    assert page.locator("#acc-block").is_visible()
    assert page.locator("#model-link").get_attribute("href").startswith("/models/")
    page.check("#logscale")
    wait_until(lambda: points(web) == LIVE_EPOCHS, what="every epoch")
    page.screenshot(path=f"{SHOTS or tmp_path}/job-finished.png", full_page=True)
    page.goto("/jobs?status=succeeded")
    assert job_id in page.inner_text("#jobs")


@pytest.mark.slow
def test_cancel_from_the_job_page(web: Browser, stack: Stack) -> None:
    job_id = slow_job(stack, epochs=5000)
    web.sign_in()
    page = web.page
    page.goto(f"/jobs/{job_id}")
    wait_until(lambda: points(web) > 0, what="the first epochs")
    page.click("#cancel button")
    wait_until(lambda: page.inner_text("#status") == "cancelled", what="cancelled")
    assert stack.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    page.goto("/jobs?status=cancelled")
    assert job_id in page.inner_text("#jobs")


def test_predict_and_download_from_the_model_page(web: Browser, stack: Stack) -> None:
    ds = stack.post("/v1/datasets", json=BLOBS).json()
    r = stack.post("/v1/jobs", json={
        "dataset_id": ds["id"], "network": {"layers": [{"units": 8}, {"units": 3}]},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 200,
                     "batch_size": "full", "seed": 1}})
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job
    web.sign_in()
    page = web.page
    page.goto(f"/models/{job['model_id']}")
    page.fill("#rows", "v,u\n0,0\n5,5\n5,0")  # a header in another order than the features
    with page.expect_navigation():
        page.click("#predict button[type=submit]")
    assert page.locator("#predict-error").count() == 0, page.inner_text("#predict-error")
    labels = page.locator("#predictions td.label-cell").all_inner_texts()
    assert labels == ["a", "b", "c"]
    assert "P(a)" in page.inner_text("#predictions thead")
    page.fill("#rows", "1,2,3")
    with page.expect_navigation():
        page.click("#predict button[type=submit]")
    assert "3 values" in page.inner_text("#predict-error")
    with page.expect_download() as download:
        page.click("#weights")
    assert download.value.suggested_filename == f"{job['model_id']}.npz"
    page.goto(f"/datasets/{ds['id']}")
    assert "blobs" in page.inner_text("h1") and job["id"] in page.inner_text("main")


def test_another_tenants_job_is_not_visible(web: Browser, stack: Stack) -> None:
    job_id = slow_job(stack, epochs=2, rows=10)
    env = {**os.environ, "DATABASE_URL": stack.database_url}
    other = subprocess.run([sys.executable, "-m", "service.cli", "create-key", "--tenant",
                            f"other-{time.time_ns()}"], env=env, cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    web.sign_in(other)
    page = web.page
    assert job_id not in page.inner_text("main")
    resp = page.goto(f"/jobs/{job_id}")
    assert resp.status == 404
    status = page.evaluate("u => fetch(u).then(r => r.status)", f"/v1/jobs/{job_id}/events")
    assert status == 404


@pytest.mark.slow
def test_a_100000_epoch_history_draws_without_freezing(web: Browser, stack: Stack) -> None:
    from service.models import EpochRecord, Job

    job_id = slow_job(stack, epochs=2, rows=10)
    stack.wait_job(job_id)
    engine = create_engine(stack.database_url)
    with engine.begin() as conn:  # the same job, now with a long history
        conn.execute(EpochRecord.__table__.delete().where(EpochRecord.job_id == job_id))
        conn.execute(insert(EpochRecord), [
            {"job_id": job_id, "epoch": e, "loss": 1.0 / e, "val_loss": 1.1 / e,
             "accuracy": 1 - 1.0 / (e + 1), "val_accuracy": 1 - 1.2 / (e + 1),
             "learning_rate": 0.1, "seconds": 0.001} for e in range(1, 100_001)])
        conn.execute(Job.__table__.update().where(Job.id == job_id)
                     .values(epochs=100_000, epoch=100_000))
    engine.dispose()
    web.sign_in()
    page = web.page
    page.goto(f"/jobs/{job_id}")
    wait_until(lambda: points(web) == 100_000, timeout=120, what="100,000 epochs")
    drawn = int(page.get_attribute("#points", "data-drawn"))
    assert drawn <= 2001, drawn  # downsampled for drawing; all 100,000 kept
    assert page.evaluate("1 + 1") == 2  # the page still answers
    page.check("#logscale")
    assert page.get_attribute("#points", "data-points") == "100000"


def test_the_job_page_shows_the_diagnostics_and_findings_it_recorded(
        web: Browser, stack: Stack, tmp_path: Path) -> None:
    layers = [{"units": 8, "activation": "sigmoid"}] * 8 + [{"units": 3}]
    ds = stack.post("/v1/datasets", json=BLOBS).json()
    r = stack.post("/v1/jobs", json={
        "dataset_id": ds["id"], "network": {"layers": layers},
        "training": {"optimizer": {"name": "sgd", "learning_rate": 0.1}, "epochs": 6,
                     "batch_size": "full", "seed": 1, "diagnostics": {"every": 2}}})
    job = stack.wait_job(r.json()["id"])
    assert job["status"] == "succeeded", job
    recorded = stack.get(f"/v1/jobs/{job['id']}/diagnostics").json()["items"]
    assert [e["epoch"] for e in recorded] == [2, 4, 6]
    web.sign_in()
    page = web.page
    page.goto(f"/jobs/{job['id']}")
    panel = page.locator("#diagnostics")
    wait_until(lambda: panel.get_attribute("data-epochs") == "3", what="3 recorded epochs")
    assert page.inner_text("#diag-epoch") == "epoch 6"  # the latest recorded epoch
    cells = [row.locator("td").all_inner_texts() for row in page.locator("#diag-rows tr").all()]
    last = recorded[-1]["layers"]
    assert [c[0] for c in cells] == [str(r["layer"]) for r in last] == [str(i) for i in range(9)]
    for c, row in zip(cells, last, strict=True):
        assert c[1] == row["activation"]
        for i, key in ((2, "grad_norm_W"), (4, "weight_norm"), (7, "activation_std")):
            assert float(c[i]) == pytest.approx(row[key], rel=5e-3), key  # 3 digits
        saturated = row["saturated_fraction"]  # sigmoid layers' figure (None on softmax)
        assert c[9] == (DASH if saturated is None else f"{100 * saturated:.1f}%")
        assert c[8] == DASH  # dead units are a relu figure
    assert page.locator("#chart-grad canvas").count() == 1
    assert "layer 8" in page.inner_text("#chart-grad")  # the legend names every layer
    assert page.locator("#warnings").is_visible()
    names = page.locator("#warnings-list li").evaluate_all("els => els.map(e => e.dataset.name)")
    assert names == [w["name"] for w in job["warnings"]] and "vanishing_gradients" in names
    assert page.locator("#diag-hint").count() == 0
    page.screenshot(path=f"{SHOTS or tmp_path}/job-diagnostics.png", full_page=True)

    other = slow_job(stack, epochs=2, rows=10)  # no diagnostics: a hint, no panel
    stack.wait_job(other)
    page.goto(f"/jobs/{other}")
    wait_until(lambda: points(web) == 2, what="2 epochs")
    assert "diagnostics" in page.inner_text("#diag-hint")
    assert page.locator("#diagnostics").count() == 0
