"""Evaluation metrics against scikit-learn on real data (digits, wine, diabetes), to 1e-9."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn import metrics
from sklearn.datasets import load_diabetes, load_digits, load_wine

import backprop
from backprop.evaluation import average_ranks, binary_auc, classification_report

TOL = 1e-9


def fitted(X: np.ndarray, y: Any, layers: list[dict[str, Any]], epochs: int = 5,
           **training: Any) -> backprop.Model:
    spec = {"network": {"layers": layers},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.01}, "epochs": epochs,
                         "seed": 0, **training}}
    return backprop.train(spec, X, y)


def check_classification(report: dict[str, Any], y_true: list[Any], probs: np.ndarray,
                         classes: list[Any]) -> None:
    y_pred = [classes[i] for i in probs.argmax(axis=1)]
    assert report["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred), abs=TOL)
    p, r, f, s = metrics.precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                         zero_division=0)
    for i, row in enumerate(report["per_class"]):
        assert row["class"] == classes[i]
        assert row["precision"] == pytest.approx(p[i], abs=TOL)
        assert row["recall"] == pytest.approx(r[i], abs=TOL)
        assert row["f1"] == pytest.approx(f[i], abs=TOL)
        assert row["support"] == s[i]
    for avg in ("macro", "weighted"):
        ap, ar, af, _ = metrics.precision_recall_fscore_support(y_true, y_pred, average=avg,
                                                                zero_division=0)
        assert report[f"{avg}_precision"] == pytest.approx(ap, abs=TOL)
        assert report[f"{avg}_recall"] == pytest.approx(ar, abs=TOL)
        assert report[f"{avg}_f1"] == pytest.approx(af, abs=TOL)
    cm = metrics.confusion_matrix(y_true, y_pred, labels=classes)
    assert report["confusion_matrix"] == {"labels": classes, "matrix": cm.tolist()}
    assert report["log_loss"] == pytest.approx(
        metrics.log_loss(y_true, y_proba=probs, labels=classes), abs=TOL)
    if len(classes) == 2:
        auc = metrics.roc_auc_score([c == classes[1] for c in y_true], probs[:, 1])
    else:
        auc = metrics.roc_auc_score(y_true, probs, multi_class="ovr", average="macro",
                                    labels=classes)
    assert report["roc_auc"] == pytest.approx(auc, abs=TOL)
    assert report["rows"] == len(y_true) and report["classes"] == classes


def test_digits_against_sklearn() -> None:
    X, y = load_digits(return_X_y=True)
    model = fitted(X[:1200], y[:1200], [{"units": 16, "activation": "relu"}, {"units": 10}],
                   epochs=2)  # short: leave mistakes, so every metric is exercised
    report = backprop.evaluate(model, X[1200:], y[1200:])
    probs = backprop.evaluation.outputs(model.network, model.standardizer.transform(X[1200:]))
    assert report["accuracy"] < 1.0
    check_classification(report, list(y[1200:]), probs, list(range(10)))


def test_wine_with_string_labels_against_sklearn() -> None:
    X, y = load_wine(return_X_y=True)
    names = np.array(["barolo", "grignolino", "barbera"])[y].tolist()
    model = fitted(X, names, [{"units": 4, "activation": "tanh"}, {"units": 3}], epochs=3)
    report = backprop.evaluate(model, X, names)
    probs = backprop.evaluation.outputs(model.network, model.standardizer.transform(X))
    assert model.classes == ["barbera", "barolo", "grignolino"]
    check_classification(report, names, probs, model.classes)


def test_binary_sigmoid_output_against_sklearn() -> None:
    X, y = load_wine(return_X_y=True)
    labels = ["red" if v == 0 else "other" for v in y]
    model = fitted(X, labels, [{"units": 3, "activation": "tanh"}, {"units": 1}], epochs=2)
    assert model.network.activations[-1] == "sigmoid"
    report = backprop.evaluate(model, X, labels)
    out = backprop.evaluation.outputs(model.network, model.standardizer.transform(X))
    check_classification(report, labels, np.hstack([1 - out, out]), model.classes)


def test_absent_classes_and_undefined_auc() -> None:
    """A class absent from the truth and the predictions is out of the macro average, as in
    scikit-learn; a class with no positive row makes the one-vs-rest AUC undefined."""
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]])
    y_true = np.array([0, 1, 1, 0])
    report = classification_report(y_true, probs, ["a", "b", "c"])
    y_pred = probs.argmax(axis=1)
    assert report["macro_f1"] == pytest.approx(metrics.f1_score(y_true, y_pred,
                                                                average="macro"), abs=TOL)
    assert report["per_class"][2] == {"class": "c", "precision": 0.0, "recall": 0.0, "f1": 0.0,
                                      "support": 0}
    assert report["roc_auc"] is None


def test_auc_ties_count_one_half() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, 200).astype(float)  # many ties
    positive = rng.random(200) < 0.4
    assert binary_auc(positive, scores) == pytest.approx(
        metrics.roc_auc_score(positive, scores), abs=1e-12)
    np.testing.assert_array_equal(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])),
                                  [3.5, 1.0, 3.5, 2.0])
    assert binary_auc(np.ones(3, bool), scores[:3]) is None


def test_regression_against_sklearn() -> None:
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, y / 100.0 + X[:, 0]])  # two outputs of different scales
    model = fitted(X, Y, [{"units": 8, "activation": "tanh"}, {"units": 2}], epochs=20)
    report = backprop.evaluate(model, X, Y)
    pred = backprop.evaluation.outputs(model.network, model.standardizer.transform(X))
    assert report["task"] == "regression" and report["rows"] == len(X)
    for j, row in enumerate(report["outputs"]):
        assert row["name"] == f"y{j}"
        assert row["mse"] == pytest.approx(metrics.mean_squared_error(Y[:, j], pred[:, j]),
                                           rel=TOL)
        assert row["rmse"] == pytest.approx(
            metrics.root_mean_squared_error(Y[:, j], pred[:, j]), rel=TOL)
        assert row["mae"] == pytest.approx(metrics.mean_absolute_error(Y[:, j], pred[:, j]),
                                           rel=TOL)
        assert row["r2"] == pytest.approx(metrics.r2_score(Y[:, j], pred[:, j]), abs=TOL)
    overall = report["overall"]
    assert overall["mse"] == pytest.approx(metrics.mean_squared_error(Y, pred), rel=TOL)
    assert overall["rmse"] == pytest.approx(metrics.root_mean_squared_error(Y, pred), rel=TOL)
    assert overall["mae"] == pytest.approx(metrics.mean_absolute_error(Y, pred), rel=TOL)
    assert overall["r2"] == pytest.approx(metrics.r2_score(Y, pred), abs=TOL)


def test_r2_edge_cases_follow_sklearn() -> None:
    from backprop.evaluation import regression_report

    const = np.full((4, 1), 2.0)
    assert regression_report(const, const)["overall"]["r2"] == metrics.r2_score(const, const)
    assert regression_report(const, const + 1)["overall"]["r2"] == metrics.r2_score(const,
                                                                                    const + 1)
    assert regression_report(np.ones((1, 1)), np.zeros((1, 1)))["overall"]["r2"] is None


def test_validation_report_is_kept_with_the_model() -> None:
    X, y = load_wine(return_X_y=True)
    model = fitted(X, y, [{"units": 6}, {"units": 3}], epochs=10, validation_split=0.25)
    assert model.evaluation is not None and model.evaluation["rows"] == round(len(X) * 0.25)
    assert model.evaluation["task"] == "classification"
    assert fitted(X, y, [{"units": 6}, {"units": 3}], epochs=1).evaluation is None


def test_bad_input() -> None:
    X, y = load_wine(return_X_y=True)
    model = fitted(X, y, [{"units": 3}, {"units": 3}], epochs=1)
    with pytest.raises(ValueError, match="unknown class label 7"):
        backprop.evaluate(model, X[:2], [0, 7])
    with pytest.raises(ValueError, match="input rows but"):
        backprop.evaluate(model, X[:2], [0])
    with pytest.raises(ValueError, match=r"shape \(n_samples, 13\)"):
        backprop.evaluate(model, X[:2, :3], [0, 1])
