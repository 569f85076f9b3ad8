"""``training.kernel`` through the API: recorded in the job's spec as the kernel that runs, a
clear 422 naming the field when the compiled kernel cannot run here, and a job that trains."""

from __future__ import annotations

from typing import Any

import pytest

from backprop import kernels

from .helpers import locs, make_dataset, make_job, problem, run

LAYERS = [{"units": 4}, {"units": 1}]


@pytest.mark.skipif(not kernels.available(), reason="numba is not installed")
def test_auto_is_recorded_as_the_kernel_it_chose(app: Any, client: Any,
                                                 auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)  # XOR: 4 rows
    job = make_job(client, auth, ds["id"], training={"epochs": 20, "batch_size": "full"})
    assert job["spec"]["training"]["kernel"] == "compiled"  # a full batch of 4 rows
    job = make_job(client, auth, ds["id"], training={"epochs": 20, "batch_size": 1,
                                                     "kernel": "numpy"})
    assert job["spec"]["training"]["kernel"] == "numpy"
    job = make_job(client, auth, ds["id"], training={"epochs": 20, "kernel": "compiled"})
    assert run(app, job["id"]) == "succeeded"
    model = client.get(f"/v1/jobs/{job['id']}", headers=auth).get_json()
    assert model["spec"]["training"]["kernel"] == "compiled"


def test_compiled_without_numba_is_a_422_naming_the_field(
        client: Any, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "available", lambda: False)
    ds = make_dataset(client, auth)
    err = problem(client.post("/v1/jobs", headers=auth, json={
        "dataset_id": ds["id"], "network": {"layers": LAYERS},
        "training": {"kernel": "compiled"}}), 422)
    assert ["training", "kernel"] in locs(err), err
    assert "numba" in err["detail"], err
    job = make_job(client, auth, ds["id"], training={"batch_size": 1})
    assert job["spec"]["training"]["kernel"] == "numpy"  # auto falls back


def test_unknown_kernel_is_a_422(client: Any, auth: dict[str, str]) -> None:
    ds = make_dataset(client, auth)
    err = problem(client.post("/v1/jobs", headers=auth, json={
        "dataset_id": ds["id"], "network": {"layers": LAYERS},
        "training": {"kernel": "fast"}}), 422)
    assert ["training", "kernel"] in locs(err), err
