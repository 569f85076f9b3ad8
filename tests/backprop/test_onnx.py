"""ONNX export: onnxruntime gives the engine's outputs (1e-6, float32) for every activation."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx  # the onnx extra; onnx and onnxruntime are dev dependencies
import onnxruntime as ort
import pytest

import backprop
from backprop.onnx_export import IR_VERSION, OPSET, to_onnx

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]


def _data(rows: int = 60, features: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[5.0, -2.0, 30.0][:features], scale=[1.0, 0.5, 8.0][:features],
                      size=(rows, features))


def _run(model_bytes: bytes, X: np.ndarray) -> dict[str, Any]:
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"inputs": X.astype(np.float32)}), strict=True))


def _spec(hidden: str, output: str | None, units: int, **training: Any) -> dict[str, Any]:
    last: dict[str, Any] = {"units": units}
    if output:
        last["activation"] = output
    return {"network": {"layers": [{"units": 7, "activation": hidden},
                                   {"units": 5, "activation": hidden}, last]},
            "training": {"epochs": 5, "batch_size": 16, "seed": 3,
                         "optimizer": {"name": "adam", "learning_rate": 0.01}, **training}}


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("output", ["identity", "sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("standardize", [True, False])
def test_regression_matches_the_engine(hidden: str, output: str, standardize: bool) -> None:
    X = _data()
    y = np.c_[np.sin(X[:, 0]), X[:, 1] * 0.1]
    model = backprop.train(_spec(hidden, output, 2, standardize=standardize), X, y)
    got = _run(to_onnx(model), X)
    assert set(got) == {"outputs"}
    np.testing.assert_allclose(got["outputs"], model.predict(X), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("classes", [["cat", "dog", "eel"], [3, 7, 11]])
def test_softmax_classifier_gives_probabilities_and_labels(hidden: str,
                                                           classes: list[Any]) -> None:
    X = _data()
    labels = [classes[i] for i in (X[:, 0] > 5).astype(int) + (X[:, 2] > 30).astype(int)]
    model = backprop.train(_spec(hidden, None, 3), X, labels)
    got = _run(to_onnx(model), X)
    np.testing.assert_allclose(got["probabilities"], model.predict(X), rtol=1e-6, atol=1e-6)
    assert [c.decode() if isinstance(c, bytes) else c for c in got["labels"].tolist()] == \
        model.predict_labels(X)
    assert got["labels"].dtype == (np.int64 if isinstance(classes[0], int) else object)


@pytest.mark.parametrize("hidden", HIDDEN)
def test_binary_sigmoid_unit_gives_two_probability_columns(hidden: str) -> None:
    X = _data()
    labels = ["no" if v < 5 else "yes" for v in X[:, 0]]
    model = backprop.train(_spec(hidden, "sigmoid", 1), X, labels)
    got = _run(to_onnx(model), X)
    np.testing.assert_allclose(got["probabilities"], model.predict(X), rtol=1e-6, atol=1e-6)
    assert got["labels"].tolist() == model.predict_labels(X)


def test_float64_model_exports_to_float32() -> None:
    X = _data()
    model = backprop.train(_spec("tanh", None, 1, dtype="float64"), X, X[:, :1] * 0.2)
    got = _run(to_onnx(model), X)
    np.testing.assert_allclose(got["outputs"], model.predict(X), rtol=1e-5, atol=1e-5)


def test_the_file_is_pinned_checked_and_has_a_symbolic_batch() -> None:
    X = _data()
    model = backprop.train(_spec("relu", None, 2), X, ["a", "b"] * 30)
    proto = onnx.load_from_string(to_onnx(model))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.ir_version == IR_VERSION and proto.opset_import[0].version == OPSET
    dim = proto.graph.input[0].type.tensor_type.shape.dim
    assert dim[0].dim_param == "batch" and dim[1].dim_value == 3
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["classes"] == "a,b" and meta["task"] == "classification"
    for rows in (1, 17):  # any batch size
        assert _run(to_onnx(model), X[:rows])["probabilities"].shape == (rows, 2)
