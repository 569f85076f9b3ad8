"""Evaluation metrics, in NumPy, with scikit-learn's definitions.

Classification (``classification_report``), from true class indices and predicted
probabilities ``(n, n_classes)``:

- ``accuracy``; per class ``precision``, ``recall``, ``f1`` and ``support`` (0 where undefined,
  scikit-learn's ``zero_division=0``); ``macro_*`` averages over the classes present in the true
  or predicted labels (scikit-learn's default label set), ``weighted_*`` weights them by support;
- ``confusion_matrix``: rows are true classes, columns predicted, in the model's class order;
- ``log_loss``: mean of ``-log p(true class)``, probabilities clipped to ``[eps, 1 - eps]``
  (``eps`` of float64), as ``sklearn.metrics.log_loss``;
- ``roc_auc``: two classes, the AUC of the second class's probability; more, the macro mean of
  one-vs-rest AUCs (``multi_class="ovr"``). ``None`` when a class has no positive or no negative
  row (scikit-learn refuses those). Ties count one half (the trapezoidal ROC area).

Regression (``regression_report``), per output and ``overall`` (the mean over outputs,
scikit-learn's ``multioutput="uniform_average"``, so the overall RMSE is the mean of the
per-output RMSEs): ``mse``, ``rmse``, ``mae``, ``r2`` (``1 - SS_res / SS_tot``; a constant
target gives 1 when predicted exactly, else 0, as ``force_finite=True``; ``None`` below 2 rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .network import Network

CHUNK_ROWS = 8192


def outputs(network: Network, X: np.ndarray) -> np.ndarray:
    """Network outputs for ``X`` (already preprocessed) computed in float64, in chunks of rows
    so that memory stays bounded on large sets."""
    net = network.copy(np.float64) if network.dtype != np.float64 else network
    parts = [net.forward(X[i:i + CHUNK_ROWS]) for i in range(0, X.shape[0], CHUNK_ROWS)]
    return np.concatenate(parts) if parts else np.empty((0, net.n_outputs))


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(new) - 1]
    return ranks


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC of ``scores`` for the boolean ``positive`` (Mann-Whitney U / (n+ n-))."""
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_report(y_true: np.ndarray, probabilities: np.ndarray,
                          classes: Sequence[Any]) -> dict[str, Any]:
    """Metrics for true class indices ``y_true`` ``(n,)`` and ``probabilities``
    ``(n, n_classes)`` (rows summing to 1), classes named by ``classes``."""
    y_true = np.asarray(y_true, dtype=np.intp)
    probs = np.asarray(probabilities, dtype=np.float64)
    k = len(classes)
    if probs.shape != (y_true.size, k):
        raise ValueError(f"probabilities must have shape ({y_true.size}, {k}), got {probs.shape}")
    y_pred = probs.argmax(axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_divide(tp, predicted.astype(np.float64))
    recall = _safe_divide(tp, support.astype(np.float64))
    f1 = _safe_divide(2.0 * tp, (support + predicted).astype(np.float64))
    present = (support + predicted) > 0
    total = support.sum()

    def averages(values: np.ndarray) -> tuple[float, float]:
        macro = float(values[present].mean()) if present.any() else 0.0
        weighted = float((values * support).sum() / total) if total else 0.0
        return macro, weighted

    (mp, wp), (mr, wr), (mf, wf) = averages(precision), averages(recall), averages(f1)
    eps = np.finfo(np.float64).eps
    p_true = np.clip(probs[np.arange(y_true.size), y_true], eps, 1 - eps)
    if k == 2:
        auc = binary_auc(y_true == 1, probs[:, 1])
    else:
        aucs = [binary_auc(y_true == c, probs[:, c]) for c in range(k)]
        auc = None if any(a is None for a in aucs) else float(np.mean(aucs))
    return {
        "task": "classification",
        "rows": int(y_true.size),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "classes": list(classes),
        "per_class": [{"class": c, "precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i])}
                      for i, c in enumerate(classes)],
        "macro_precision": mp, "macro_recall": mr, "macro_f1": mf,
        "weighted_precision": wp, "weighted_recall": wr, "weighted_f1": wf,
        "confusion_matrix": {"labels": list(classes), "matrix": cm.tolist()},
        "log_loss": float(-np.log(p_true).mean()) if y_true.size else None,
        "roc_auc": auc,
    }


def _regression_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    err = y - p
    mse = float(np.mean(err * err))
    ss_res = float(np.sum(err * err))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if y.size < 2:
        r2 = None
    elif ss_tot == 0.0:
        r2 = 1.0 if ss_res == 0.0 else 0.0
    else:
        r2 = 1.0 - ss_res / ss_tot
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(err))),
            "r2": r2}


def regression_report(Y_true: np.ndarray, Y_pred: np.ndarray,
                      names: Sequence[str] | None = None) -> dict[str, Any]:
    """Metrics for targets and predictions ``(n, n_outputs)``, outputs named by ``names``."""
    Y_true = np.asarray(Y_true, dtype=np.float64)
    Y_pred = np.asarray(Y_pred, dtype=np.float64)
    if Y_true.ndim == 1:
        Y_true = Y_true.reshape(-1, 1)
    if Y_pred.shape != Y_true.shape or Y_true.shape[0] == 0:
        raise ValueError(f"targets {Y_true.shape} and predictions {Y_pred.shape} must have the "
                         "same non-empty shape")
    names = list(names) if names is not None else [f"y{j}" for j in range(Y_true.shape[1])]
    per = [{"name": names[j], **_regression_metrics(Y_true[:, j], Y_pred[:, j])}
           for j in range(Y_true.shape[1])]
    overall: dict[str, float | None] = {}
    for key in ("mse", "rmse", "mae", "r2"):
        values = [row[key] for row in per]
        overall[key] = None if any(v is None for v in values) else float(np.mean(values))
    return {"task": "regression", "rows": int(Y_true.shape[0]), "outputs": per,
            "overall": overall}


def evaluate(model: Any, X: Any, y: Any) -> dict[str, Any]:
    """The report for a ``backprop.Model`` on raw inputs ``X`` ``(n, n_inputs)`` and labels
    (classification) or targets ``(n, n_outputs)`` (regression). Raises ``ValueError`` on an
    unknown label, a wrong shape, or outputs that are not finite."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != model.n_inputs:
        raise ValueError(f"inputs must have shape (n_samples, {model.n_inputs}), got {X.shape}")
    Xp = model.standardizer.transform(X) if model.standardizer is not None else X
    out = outputs(model.network, Xp)
    if not np.isfinite(out).all():
        row = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise ValueError(f"row {row} gives a non-finite output")
    if model.encoder is not None:
        labels = list(y)
        if len(labels) != out.shape[0]:
            raise ValueError(f"got {out.shape[0]} input rows but {len(labels)} labels")
        return classification_report(model.encoder.indices(labels),
                                     model.encoder.probabilities(out), model.classes)
    return regression_report(np.asarray(y, dtype=np.float64), out)
