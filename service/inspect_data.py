"""Rows, targets and labels for tracing and evaluating a model, checked against it: each
problem is a 4xx naming the field (and the row) that is wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

import backprop

from . import datasets
from .config import Limits
from .errors import Loc, invalid, too_large
from .inspect_schemas import EvaluateIn
from .models import Dataset, TrainedModel


def check_rows(rows: list[list[float]], width: int, max_rows: int, limit: str,
               loc: str = "inputs") -> np.ndarray:
    if len(rows) > max_rows:
        raise too_large(limit, f"{len(rows)} rows in one call, more than {max_rows}", [loc])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise invalid([loc, i], f"row {i} has {len(row)} values; the model takes {width} "
                          "inputs")
    return np.asarray(rows, dtype=np.float64)


def _labels(model: backprop.Model, labels: list[Any] | None, targets: Any, n: int) -> list[Any]:
    classes = model.classes or []
    if labels is None:
        where = ["targets"] if targets is not None else []
        raise invalid(where or ["labels"], f"the model is a classifier: give 'labels' (one of "
                      f"{classes}) instead of 'targets'")
    if len(labels) != n:
        raise invalid(["labels"], f"{len(labels)} labels for {n} input rows")
    known = set(classes)
    for i, label in enumerate(labels):
        if label not in known or isinstance(label, bool):
            raise invalid(["labels", i], f"{label!r} is not a class of the model; the classes "
                          f"are {classes}")
    return labels


def _targets(model: backprop.Model, targets: list[list[float]] | None, labels: Any,
             n: int) -> np.ndarray:
    outputs = model.network.n_outputs
    if targets is None:
        raise invalid(["labels"] if labels is not None else ["targets"],
                      f"the model does regression: give 'targets' ({outputs} numbers per row) "
                      "instead of 'labels'")
    if len(targets) != n:
        raise invalid(["targets"], f"{len(targets)} target rows for {n} input rows")
    for i, row in enumerate(targets):
        if len(row) != outputs:
            raise invalid(["targets", i], f"row {i} has {len(row)} values; the model has "
                          f"{outputs} outputs")
    return np.asarray(targets, dtype=np.float64)


def trace_targets(model: backprop.Model, targets: list[list[float]] | None,
                  labels: list[Any] | None, n: int) -> np.ndarray:
    """Targets as the network sees them: one-hot (or 0/1) rows for labels."""
    if model.encoder is not None:
        return model.encoder.encode(_labels(model, labels, targets, n), np.float64)
    return _targets(model, targets, labels, n)


def evaluation_data(s: Session, m: TrainedModel, model: backprop.Model, body: EvaluateIn,
                    limits: Limits) -> tuple[np.ndarray, Any, Loc]:
    """``(X, labels or targets, the field to blame for a bad row)`` from the body."""
    if body.inputs is not None:
        X = check_rows(body.inputs, m.inputs, limits.max_evaluate_rows, "MAX_EVALUATE_ROWS")
        if model.encoder is not None:
            return X, _labels(model, body.labels, body.targets, len(X)), ["inputs"]
        return X, _targets(model, body.targets, body.labels, len(X)), ["inputs"]
    ds = s.get(Dataset, body.dataset_id)
    loc: Loc = ["dataset_id"]
    if ds is None or ds.tenant_id != m.tenant_id:
        raise invalid(loc, f"no dataset with id {body.dataset_id!r}")
    if ds.rows > limits.max_evaluate_rows:
        raise too_large("MAX_EVALUATE_ROWS", f"the dataset has {ds.rows} rows, more than "
                        f"{limits.max_evaluate_rows}", loc)
    if ds.features != m.inputs:
        raise invalid(loc, f"the dataset has {ds.features} input columns; the model takes "
                      f"{m.inputs}")
    if ds.task != m.task:
        raise invalid(loc, f"the dataset is for {ds.task}; the model does {m.task}")
    X, y = datasets.load_arrays(s, ds)
    if model.encoder is not None:
        unknown = sorted(set(ds.classes or []) - set(model.classes or []), key=str)
        if unknown:
            raise invalid(loc, f"the dataset has labels that are not classes of the model: "
                          f"{unknown}; the model's classes are {model.classes}")
    elif ds.outputs != model.network.n_outputs:
        raise invalid(loc, f"the dataset has {ds.outputs} target columns; the model has "
                      f"{model.network.n_outputs} outputs")
    return X, y, loc
