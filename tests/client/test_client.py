"""The client against a real stack: upload, train and wait, history, predict (chunked under
MAX_PREDICT_ROWS), download and predict locally with the same numbers, cancel, idempotency,
and each typed exception from a real error answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backprop_client import (
    BadRequest,
    Client,
    Conflict,
    JobCancelled,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
)
from tests.e2e.conftest import Stack

from .conftest import MAX_FEATURES, MAX_PREDICT_ROWS, SPEC, three_classes, write_csv

LONG = {"network": {"layers": [{"units": 64, "activation": "tanh"}, {"units": 3}]},
        "training": {"epochs": 100000, "batch_size": 1, "seed": 1}}


def test_csv_train_wait_history_predict_download(client: Client, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    X, labels = three_classes()
    ds = client.datasets.create(write_csv(tmp_path / "three.csv", X, labels), target="species")
    assert (ds.name, ds.rows, ds.features, ds.task) == ("three", 240, 3, "classification")
    assert ds.classes == ["setosa", "versicolor", "virginica"]
    assert ds.feature_names == ["sepal", "petal", "stem"]

    job = client.jobs.create(SPEC, dataset=ds)
    assert job.status in ("queued", "running")
    done = job.wait()
    assert done.status == "succeeded" and done.model_id
    bar = capsys.readouterr().err
    assert "epoch 30/30" in bar and "loss" in bar and "val_loss" in bar

    history = list(done.history())
    assert [r["epoch"] for r in history] == list(range(1, 31))
    arrays = done.history_arrays()
    assert arrays["epoch"].tolist() == list(range(1, 31))
    assert arrays["loss"][-1] == history[-1]["loss"] and not np.isnan(arrays["val_loss"]).any()

    model = done.model()
    assert (model.task, model.inputs, model.classes) == ("classification", 3, ds.classes)
    pred = model.predict(X)  # 240 rows: 10 chunks under MAX_PREDICT_ROWS, learnt from a 413
    assert client.models.predict_rows == MAX_PREDICT_ROWS
    assert pred.outputs.shape == (240, 3) and pred.labels is not None
    assert pred.probabilities is not None and np.allclose(pred.probabilities.sum(axis=1), 1)
    assert (pred.labels == np.asarray(labels)).mean() > 0.8

    local = model.download(tmp_path / "model.npz")
    assert (tmp_path / "model.npz").stat().st_size > 0
    assert np.array_equal(local.predict(X), pred.probabilities)
    assert local.predict_labels(X) == pred.labels.tolist()
    assert [j.id for j in client.jobs.list(status="succeeded")][:1] == [done.id]


def test_arrays_lists_and_dataframes(client: Client) -> None:
    xor = client.datasets.create([[0, 0], [0, 1], [1, 0], [1, 1]], [0.0, 1.0, 1.0, 0.0],
                                 name="xor")
    assert (xor.task, xor.rows, xor.features, xor.outputs) == ("regression", 4, 2, 1)
    X, labels = three_classes(30)
    arr = client.datasets.create(X, np.asarray(labels), name="arr")
    assert arr.task == "classification" and arr.rows == 30
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(kind=labels)
    by_target = client.datasets.create(frame, target="kind", name="frame")
    by_y = client.datasets.create(frame[["a", "b", "c"]], frame["kind"], name="frame-y")
    for ds in (by_target, by_y):
        assert (ds.task, ds.feature_names, ds.classes) == (
            "classification", ["a", "b", "c"], sorted(set(labels)))
    assert {d.id for d in client.datasets.list(page_size=1)} >= {xor.id, arr.id, by_y.id}
    by_y.delete()
    with pytest.raises(NotFound):
        client.datasets.get(by_y.id)


def test_a_retried_create_returns_the_same_job(client: Client) -> None:
    ds = client.datasets.create(*three_classes(30), name="idem")
    first = client.jobs.create(SPEC, dataset=ds.id, idempotency_key="retry-me")
    again = client.jobs.create(SPEC, dataset=ds.id, idempotency_key="retry-me")
    other = client.jobs.create(SPEC, dataset=ds.id)
    assert first.id == again.id != other.id
    other.wait(progress=False)
    first.wait(progress=False)


def test_cancel_and_wait_timeout(client: Client) -> None:
    ds = client.datasets.create(*three_classes(60), name="long")
    job = client.jobs.create(LONG, dataset=ds)
    with pytest.raises(WaitTimeout):
        job.wait(timeout=1.0, progress=False)
    job.cancel()
    with pytest.raises(JobCancelled) as info:
        job.wait(timeout=60, progress=False)
    assert info.value.job.status == "cancelled"
    with pytest.raises(Conflict) as conflict:
        job.cancel()
    assert conflict.value.status == 409 and conflict.value.detail


def test_each_error_answer_is_its_own_exception(client: Client, stack: Stack) -> None:
    with pytest.raises(NotFound) as nf:
        client.jobs.get("job_nope")
    assert (nf.value.status, nf.value.title) == (404, "Not Found") and "job_nope" in nf.value.detail
    with pytest.raises(Unauthorized) as un:
        Client(stack.base, "bp_wrong").datasets.get("x")
    assert un.value.status == 401
    ds = client.datasets.create(*three_classes(30), name="errors")
    with pytest.raises(ValidationError) as bad:
        client.jobs.create(dataset=ds, layers="8:tanh,2", epochs=5)  # 3 classes, 2 units
    assert bad.value.status == 422 and bad.value.errors
    assert all("loc" in e and "msg" in e for e in bad.value.errors)
    with pytest.raises(ValidationError) as typo:
        client.jobs.create(dataset=ds, layers="3", epoch=5)
    assert ["training", "epoch"] in [e["loc"] for e in typo.value.errors]
    with pytest.raises(PayloadTooLarge) as big:
        client.datasets.create(np.zeros((4, MAX_FEATURES + 1)), [0.0, 1.0, 0.0, 1.0], name="w")
    assert big.value.status == 413 and "MAX_FEATURES" in big.value.detail
    with pytest.raises(BadRequest):
        client.transport.request("POST", "/v1/jobs", data=b"{not json",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(UnsupportedMediaType):
        client.transport.request("POST", "/v1/datasets", data=b"a,b",
                                 headers={"Content-Type": "text/plain"})
