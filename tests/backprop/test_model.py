"""``train`` and ``Model``: task inference, data validation, dtypes, the optional gradient check,
and save/load (identical predictions, labels and feature names kept, hostile archives refused)."""

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop
from backprop import GradientCheckError, Model, infer_task, serialize
from backprop.activations import ACTIVATIONS, Activation


def data(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    return X, X[:, 0] - X[:, 1] / 10.0 + X[:, 2] / 100.0


def classifier(labels: list[Any], units: int | None = None, **training: Any) -> Model:
    X, score = data()
    edges = np.quantile(score, np.linspace(0, 1, len(labels) + 1)[1:-1])
    y = [labels[i] for i in np.digitize(score, edges)]
    spec = {"network": {"layers": [{"units": 6}, {"units": units or len(labels)}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 30,
                         "seed": 1, **training}}
    return backprop.train(spec, X, y, feature_names=["a", "b", "c"])


def regressor(**training: Any) -> Model:
    X, y = data()
    spec = {"network": {"layers": [{"units": 6, "activation": "relu"}, {"units": 2}]},
            "training": {"optimizer": "adam", "epochs": 5, "seed": 1, **training}}
    return backprop.train(spec, X, np.c_[y, -y])


# -- task and data ---------------------------------------------------------------------------


@pytest.mark.parametrize(("y", "task"), [
    (["a", "b"], "classification"),
    (np.array([0, 1, 2]), "classification"),
    ([True, False], "classification"),
    (np.array([1.0, 2.0]), "regression"),
    (np.array([[0, 1], [1, 0]]), "regression"),
    ([[1.0], [2.0]], "regression"),
])
def test_infer_task(y: Any, task: str) -> None:
    assert infer_task(y) == task


def test_integer_targets_can_be_forced_to_regression() -> None:
    X, _ = data()
    y = np.arange(60) % 7
    spec = {"network": {"layers": [{"units": 3}, {"units": 1}]},
            "training": {"epochs": 1, "seed": 0}}
    model = backprop.train(spec, X, y, task="regression")
    assert model.task == "regression" and model.classes is None
    assert model.predict(X).shape == (60, 1)


@pytest.mark.parametrize(("X", "y", "match"), [
    (np.zeros(5), np.zeros(5), "non-empty 2-D"),
    (np.zeros((0, 3)), np.zeros(0), "non-empty 2-D"),
    (np.array([[1.0, np.nan]]), [1.0], "NaN"),
    (np.array([[1.0, np.inf]]), [1.0], "NaN or infinite"),
    (np.zeros((3, 2)), [1.0, np.nan, 2.0], "targets contain NaN"),
    (np.zeros((3, 2)), np.zeros((2, 1)), "targets must have shape"),
    (np.zeros((3, 2)), ["a", "b"], "3 input rows but 2 labels"),
    (np.zeros((3, 2)), ["a", "a", "a"], "at least 2 classes"),
])
def test_bad_data_is_a_value_error(X: Any, y: Any, match: str) -> None:
    spec = {"network": {"layers": [{"units": 2}, {"units": 1}]}, "training": {"epochs": 1}}
    with pytest.raises(ValueError, match=match):
        backprop.train(spec, X, y)


def test_bad_task_is_a_value_error() -> None:
    X, y = data()
    with pytest.raises(ValueError, match="task must be"):
        backprop.train({"network": {"layers": [{"units": 1}]}}, X, y, task="ranking")


def test_spec_is_checked_against_the_data() -> None:
    X, _ = data()
    spec = {"network": {"layers": [{"units": 4}, {"units": 2}]}, "training": {"epochs": 1}}
    with pytest.raises(backprop.SpecError) as info:
        backprop.train(spec, X, ["x", "y", "z"] * 20)
    assert info.value.loc == ("network", "layers", 1, "units")
    assert "3 classes" in str(info.value)


def test_validation_split_must_leave_rows_on_both_sides() -> None:
    X, y = data(n=3)
    spec = {"network": {"layers": [{"units": 2}, {"units": 1}]},
            "training": {"epochs": 1, "validation_split": 0.1, "seed": 0}}
    with pytest.raises(ValueError, match="leaves no validation rows"):
        backprop.train(spec, X, y)


def test_float32_by_default_float64_on_request() -> None:
    model = regressor()
    assert model.spec["training"]["dtype"] == "float32"
    assert model.network.params.dtype == np.float32
    assert model.predict(data()[0]).dtype == np.float32
    model64 = regressor(dtype="float64")
    assert model64.network.params.dtype == np.float64
    assert model64.predict(data()[0]).dtype == np.float64


def test_resolved_spec_records_the_seed() -> None:
    X, y = data()
    spec = {"network": {"layers": [{"units": 2}, {"units": 1}]}, "training": {"epochs": 2}}
    model = backprop.train(spec, X, y)
    seed = model.spec["training"]["seed"]
    assert isinstance(seed, int)
    again = backprop.train(model.spec, X, y)
    np.testing.assert_array_equal(again.network.params, model.network.params)


def test_metrics_describe_the_epoch_whose_weights_the_model_holds() -> None:
    model = classifier(["a", "b", "c"], validation_split=0.25)
    assert model.metrics == {k: model.history[-1][k]
                             for k in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")}
    assert model.metrics["epoch"] == 30 and model.stop_reason == "epochs"
    assert 0.0 <= model.metrics["val_accuracy"] <= 1.0


# -- predicting ------------------------------------------------------------------------------


def test_predict_accepts_one_row_and_checks_width() -> None:
    model = regressor()
    X, _ = data()
    np.testing.assert_array_equal(model.predict(X[0]), model.predict(X[:1]))
    np.testing.assert_array_equal(model.predict(X[:2].tolist()), model.predict(X[:2]))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        model.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="classification"):
        model.predict_labels(X)


def test_predict_applies_the_standardizer() -> None:
    model = regressor()
    X, _ = data()
    inner = model.network.forward(((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32))
    np.testing.assert_allclose(model.predict(X), inner, rtol=1e-5, atol=1e-6)


# -- gradient check option -------------------------------------------------------------------


def test_gradient_check_option_records_errors() -> None:
    model = classifier(["a", "b", "c"], gradient_check=True, epochs=1)
    report = model.gradient_check
    assert report["passed"] is True and report["tolerance"] == 1e-5 and report["eps"] == 1e-6
    assert [r["layer"] for r in report["layers"]] == ["layer0", "layer1"]
    errors = [r["relative_error"] for r in report["layers"]]
    assert max(errors) < 1e-5 and report["max_error"] == max(errors)
    net = model.network
    assert [r["parameters_checked"] for r in report["layers"]] == [
        min(200, (w.stop - w.start) + (b.stop - b.start)) for w, b in net.slices]
    assert 1 <= report["rows"] <= 16
    assert classifier(["a", "b"], epochs=1).gradient_check is None


def test_gradient_check_option_refuses_a_broken_derivative(
        monkeypatch: pytest.MonkeyPatch) -> None:
    forward, backward = ACTIVATIONS["tanh"]

    def wrong(a: np.ndarray, delta: np.ndarray, tmp: np.ndarray) -> None:
        backward(a, delta, tmp)
        delta *= 1.1

    monkeypatch.setitem(ACTIVATIONS, "tanh", Activation(forward, wrong))
    with pytest.raises(GradientCheckError) as info:
        classifier(["a", "b", "c"], gradient_check=True, epochs=1, kernel="numpy")
    assert info.value.errors["layer0"] > 1e-3
    assert "layer0" in str(info.value)
    report = info.value.report  # the report stays readable on a failure
    assert report["passed"] is False and report["worst_layer"] == "layer0"
    assert report["max_error"] == info.value.errors["layer0"]


# -- save / load -----------------------------------------------------------------------------


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [3, 7, 11], ["no", "yes"]])
def test_classifier_round_trip(labels: list[Any], tmp_path: Path) -> None:
    units = 1 if labels == ["no", "yes"] else None
    model = classifier(labels, units=units)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = Model.load(path)
    X, _ = data(seed=3)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict_labels(X) == model.predict_labels(X)
    assert loaded.classes == labels
    assert [type(c) for c in loaded.classes] == [type(c) for c in labels]
    assert loaded.feature_names == ["a", "b", "c"]
    assert loaded.task == "classification"
    assert loaded.spec == model.spec and loaded.metrics == model.metrics
    assert loaded.network.params.dtype == np.float32
    np.testing.assert_array_equal(loaded.standardizer.mean, model.standardizer.mean)
    np.testing.assert_array_equal(loaded.standardizer.scale, model.standardizer.scale)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("standardize", [True, False])
def test_regressor_round_trip_through_bytes_and_file_objects(dtype: str,
                                                             standardize: bool) -> None:
    model = regressor(dtype=dtype, standardize=standardize)
    X, _ = data(seed=4)
    loaded = Model.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.network.dtype == dtype and loaded.classes is None
    assert (loaded.standardizer is None) == (not standardize)
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    np.testing.assert_array_equal(Model.load(buf).predict(X), model.predict(X))


def test_saved_model_is_a_portable_npz() -> None:
    model = classifier(["cat", "dog", "emu"])
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"][()]))
        assert meta["format"] == "backprop.model/1"
        assert meta["classes"] == ["cat", "dog", "emu"]
        assert meta["feature_names"] == ["a", "b", "c"]
        np.testing.assert_array_equal(npz["params"], model.network.params)
        np.testing.assert_array_equal(npz["mean"], model.standardizer.mean)
        # per-layer arrays, for other tools: a forward pass by hand gives the same outputs
        X, _ = data(seed=5)
        a = (X - npz["mean"]) / npz["scale"]
        a = np.tanh(a @ npz["W0"] + npz["b0"])
        z = a @ npz["W1"] + npz["b1"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), model.predict(X),
                                   rtol=1e-4, atol=1e-6)


def crafted(model: Model, **changes: Any) -> bytes:
    """The model's archive rewritten with ``serialize.dump``: arrays replaced or meta edited."""
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"][()]))
        arrays = {name: npz[name] for name in npz.files if name != "meta"}
    meta.update(changes.pop("meta", {}))
    arrays.update(changes)
    return serialize.dump(arrays, meta)


def test_crafted_archive_with_unchanged_contents_loads() -> None:
    model = classifier(["a", "b", "c"])
    X, _ = data()
    np.testing.assert_array_equal(Model.from_bytes(crafted(model)).predict(X), model.predict(X))


@pytest.mark.parametrize(("change", "match"), [
    ({"params": np.zeros(10, np.float32)}, "shape"),
    ({"params": np.zeros((5, 10), np.float32)}, "shape"),
    ({"params": "float64"}, "dtype"),
    ({"mean": np.zeros(4)}, "shape"),
    ({"meta": {"format": "backprop.model/2"}}, "not a model archive"),
    ({"meta": {"format": "backprop.checkpoint/1"}}, "not a model archive"),
    ({"meta": {"spec": None}}, "no network spec"),
    ({"meta": {"classes": ["a", "b"]}}, "2 classes for a network with 3 outputs"),
    ({"meta": {"classes": ["a", "b", "c", "d"]}}, "4 classes"),
    ({"meta": {"classes": "abc"}}, "classes"),
    ({"meta": {"spec": {"network": {"layers": [{"units": 4, "activation": "swish"}, {"units": 3}],
                                    "inputs": 3}}}}, "unknown activation"),
])
def test_load_rejects_inconsistent_archives(change: dict[str, Any], match: str) -> None:
    model = classifier(["a", "b", "c"])
    if isinstance(change.get("params"), str):
        change = {"params": model.network.params.astype(change["params"])}
    with pytest.raises(ValueError, match=match):
        Model.from_bytes(crafted(model, **change))


def test_load_rejects_a_pickled_params_array() -> None:
    model = classifier(["a", "b", "c"])
    with np.load(io.BytesIO(model.to_bytes()), allow_pickle=False) as npz:
        meta = npz["meta"]
    buf = io.BytesIO()
    n = model.network.n_params
    np.savez(buf, meta=meta, params=np.array([0.0] * (n - 1) + [None], dtype=object))
    with pytest.raises(ValueError, match="unsupported dtype object"):
        Model.from_bytes(buf.getvalue())


@pytest.mark.parametrize("blob", [b"", b"{}", b"GIF89a not a model"])
def test_load_rejects_non_zip_blobs(blob: bytes) -> None:
    with pytest.raises(ValueError, match=r"not an \.npz archive"):
        Model.from_bytes(blob)


def test_load_rejects_a_training_checkpoint() -> None:
    saved: dict[str, bytes] = {}
    X, y = data()

    def grab(progress: backprop.Progress) -> bool:
        saved["c"] = progress.checkpoint()
        return True

    spec = {"network": {"layers": [{"units": 2}, {"units": 1}]},
            "training": {"epochs": 3, "seed": 0}}
    backprop.train(spec, X, y, callback=grab)
    with pytest.raises(ValueError, match="not a model archive"):
        Model.from_bytes(saved["c"])
