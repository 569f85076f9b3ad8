"""Datasets from JSON or CSV bodies: validation, limits, storage."""

from __future__ import annotations

import csv
import hashlib
import io
import math
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


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def from_csv(data: bytes, name: str | None, target: str | None, limits: Limits) -> Parsed:
    """A CSV with a header row; ``target`` names one or more (comma-separated) target columns.
    A non-numeric target column means classification (one target column)."""
    if not name:
        raise invalid(["query", "name"], "a CSV upload needs ?name=...")
    if not target:
        raise invalid(["query", "target"], "a CSV upload needs ?target=<column>[,<column>...]")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid(["body"], f"the CSV is not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise invalid(["body"], "the CSV is empty; it needs a header row") from None
    except csv.Error as exc:
        raise invalid(["body"], f"the CSV is malformed: {exc}") from None
    header = [h.strip() for h in header]
    if any(not h for h in header):
        raise invalid(["body", "header"], f"column {header.index('') + 1} has an empty name")
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise invalid(["body", "header"], f"the column name {h!r} appears twice")
        seen.add(h)
    targets = [t.strip() for t in target.split(",")]
    for t in targets:
        if t not in seen:
            raise invalid(["query", "target"], f"no column {t!r}; the columns are {header}")
    if len(set(targets)) != len(targets):
        raise invalid(["query", "target"], "a target column is named twice")
    t_idx = [header.index(t) for t in targets]
    f_idx = [i for i in range(len(header)) if i not in t_idx]
    if not f_idx:
        raise invalid(["query", "target"], "no input columns are left besides the targets")
    _check_shape(0, len(f_idx), len(t_idx), limits, "body")

    cells: list[list[str]] = []
    try:
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise invalid(["body", line_no], f"line {line_no} has {len(row)} fields but the "
                              f"header has {len(header)}")
            cells.append(row)
            if len(cells) > limits.max_rows:
                raise too_large("MAX_ROWS", f"the CSV has more than {limits.max_rows} rows",
                                ["body"])
    except csv.Error as exc:
        raise invalid(["body"], f"the CSV is malformed: {exc}") from None
    if not cells:
        raise invalid(["body"], "the CSV has a header but no data rows")

    X = np.empty((len(cells), len(f_idx)))
    for r, row in enumerate(cells):
        for c, j in enumerate(f_idx):
            value = _number(row[j].strip())
            if value is None:
                raise invalid(["body", r + 2, header[j]],
                              f"line {r + 2}, column {header[j]!r}: {row[j]!r} is not a finite "
                              "number (input columns must be numeric)")
            X[r, c] = value
    raw_targets = [[row[j].strip() for j in t_idx] for row in cells]
    numeric = [[_number(v) for v in row] for row in raw_targets]
    if all(v is not None for row in numeric for v in row):
        Y = np.asarray(numeric, dtype=np.float64)
        return Parsed(name, X, Y, None, [header[j] for j in f_idx], targets)
    if len(targets) > 1:
        raise invalid(["query", "target"], "a non-numeric target column means classification, "
                      "which takes exactly one target column")
    labels = [row[0] for row in raw_targets]
    for r, label in enumerate(labels):
        if not label:
            raise invalid(["body", r + 2, targets[0]], f"line {r + 2}: the label is empty")
    classes, idx = _classes(labels, ["body", targets[0]])
    _check_shape(len(cells), len(f_idx), len(classes), limits, "body")
    return Parsed(name, X, idx, classes, [header[j] for j in f_idx], targets)


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
