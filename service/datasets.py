"""Datasets from JSON or CSV bodies: validation, limits, storage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from backprop import LabelEncoder

from . import storage
from .config import Limits
from .errors import invalid, too_large
from .models import Dataset, new_id
from .schemas import DatasetCreate


@dataclass
class Parsed:
    name: str
    X: np.ndarray  # (rows, features) float64
    Y: np.ndarray  # (rows, outputs) float64, or (rows,) int64 class indices
    classes: list[Any] | None
    feature_names: list[str]
    target_names: list[str]

    @property
    def task(self) -> str:
        return "classification" if self.classes is not None else "regression"


def _check_shape(rows: int, features: int, outputs: int, limits: Limits, loc: str) -> None:
    if rows > limits.max_rows:
        raise too_large("MAX_ROWS", f"the dataset has {rows} rows, more than {limits.max_rows}",
                        [loc])
    if features > limits.max_features:
        raise too_large("MAX_FEATURES", f"the dataset has {features} input columns, more than "
                        f"{limits.max_features}", [loc])
    if outputs > limits.max_outputs:
        raise too_large("MAX_OUTPUTS", f"the dataset has {outputs} outputs (target columns or "
                        f"classes), more than {limits.max_outputs}", [loc])


def _rectangular(rows: list[list[float]], loc: str) -> np.ndarray:
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise invalid([loc, i], f"row {i} has {len(row)} values but row 0 has {width}; "
                          "every row must have the same length")
    return np.asarray(rows, dtype=np.float64)


def _classes(labels: list[Any], loc: list[str | int]) -> tuple[list[Any], np.ndarray]:
    classes = LabelEncoder.classes_of(labels)
    if len(classes) < 2:
        raise invalid(loc, f"classification needs at least 2 distinct classes, got "
                      f"{len(classes)} ({classes[0]!r})")
    return classes, LabelEncoder(classes).indices(labels).astype(np.int64)


def from_json(body: DatasetCreate, limits: Limits) -> Parsed:
    n = len(body.inputs)
    _check_shape(n, len(body.inputs[0]), 0, limits, "inputs")
    X = _rectangular(body.inputs, "inputs")
    features = X.shape[1]
    names = body.feature_names or [f"x{i}" for i in range(features)]
    if len(names) != features:
        raise invalid(["feature_names"], f"{len(names)} names for {features} input columns")
    if len(set(names)) != len(names):
        raise invalid(["feature_names"], "feature names must be distinct")
    if body.targets is not None:
        if len(body.targets) != n:
            raise invalid(["targets"], f"{len(body.targets)} target rows for {n} input rows")
        Y = _rectangular(body.targets, "targets")
        _check_shape(n, features, Y.shape[1], limits, "targets")
        return Parsed(body.name, X, Y, None, names, [f"y{i}" for i in range(Y.shape[1])])
    labels = body.labels or []
    if len(labels) != n:
        raise invalid(["labels"], f"{len(labels)} labels for {n} input rows")
    classes, idx = _classes(labels, ["labels"])
    _check_shape(n, features, len(classes), limits, "labels")
    return Parsed(body.name, X, idx, classes, names, ["label"])


def store(session: Session, tenant_id: str, parsed: Parsed) -> Dataset:
    """Persist a parsed dataset (arrays as an ``.npz`` blob) and return its row."""
    meta = {"classes": parsed.classes, "feature_names": parsed.feature_names,
            "target_names": parsed.target_names}
    data = storage.dataset_bytes(parsed.X, parsed.Y, meta)
    blob = storage.put(session, data)
    outputs = len(parsed.classes) if parsed.classes is not None else parsed.Y.shape[1]
    ds = Dataset(id=new_id("ds"), tenant_id=tenant_id, name=parsed.name, rows=parsed.X.shape[0],
                 features=parsed.X.shape[1], outputs=outputs, task=parsed.task,
                 classes=parsed.classes, feature_names=parsed.feature_names,
                 target_names=parsed.target_names,
                 sha256=hashlib.sha256(data).hexdigest(), blob_id=blob.id)
    session.add(ds)
    return ds


def load_arrays(session: Session, ds: Dataset) -> tuple[np.ndarray, Any]:
    """``X`` and the engine's targets: a float array, or the list of class labels."""
    X, Y, meta = storage.load_dataset(storage.get(session, ds.blob_id), ds.rows, ds.features,
                                      ds.outputs, ds.task == "classification")
    if ds.task == "classification":
        classes = meta["classes"]
        if Y.size and (Y.min() < 0 or Y.max() >= len(classes)):
            raise ValueError(f"dataset {ds.id} has bad class indices")
        return X, [classes[i] for i in Y]
    return X, Y
