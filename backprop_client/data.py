"""Turning what a user has (NumPy arrays, lists, a CSV path or file, a pandas DataFrame) into a
dataset upload: a JSON body or CSV bytes with the target column(s) named."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Upload:
    """Either ``body`` (JSON) or ``csv`` (bytes, with ``target``)."""

    name: str
    body: dict[str, Any] | None = None
    csv: bytes | None = None
    target: str | None = None


def _is_dataframe(obj: Any) -> bool:  # without importing pandas (not a dependency)
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "to_csv")


def _target_list(target: str | list[str] | tuple[str, ...] | None) -> str | None:
    if target is None:
        return None
    return target if isinstance(target, str) else ",".join(target)


def is_labels(y: Any) -> bool:
    """Like ``backprop.infer_task``: 1-D strings, integers or booleans are class labels."""
    arr = np.asarray(y)
    return arr.ndim == 1 and arr.dtype.kind in "USObi"


def _label(value: Any) -> str | int:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return int(value)
    return str(value)


def json_body(name: str, X: Any, y: Any, feature_names: list[str] | None) -> dict[str, Any]:
    inputs = np.asarray(X, dtype=np.float64)
    if inputs.ndim == 1:
        inputs = inputs.reshape(-1, 1)
    if inputs.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, n_features), got {inputs.shape}")
    body: dict[str, Any] = {"name": name, "inputs": inputs.tolist()}
    if is_labels(y):
        body["labels"] = [_label(v) for v in (y.tolist() if hasattr(y, "tolist") else y)]
    else:
        targets = np.asarray(y, dtype=np.float64)
        body["targets"] = (targets.reshape(-1, 1) if targets.ndim == 1 else targets).tolist()
    if feature_names is not None:
        body["feature_names"] = [str(f) for f in feature_names]
    try:
        json.dumps(body, allow_nan=False)
    except ValueError:
        raise ValueError("X or y contains NaN or infinite values; the service accepts finite "
                         "numbers only") from None
    return body


def upload(data: Any, y: Any = None, *, name: str | None = None,
           target: str | list[str] | tuple[str, ...] | None = None,
           feature_names: list[str] | None = None) -> Upload:
    """What ``client.datasets.create`` sends for ``data`` (see there)."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if target is None:
            raise ValueError("a CSV upload needs target= (the target column or columns)")
        return Upload(name or path.stem, csv=path.read_bytes(), target=_target_list(target))
    if hasattr(data, "read"):
        raw = data.read()
        if target is None:
            raise ValueError("a CSV upload needs target= (the target column or columns)")
        file_name = getattr(data, "name", None)
        default = Path(file_name).stem if isinstance(file_name, str) else "dataset"
        return Upload(name or default, csv=raw.encode() if isinstance(raw, str) else raw,
                      target=_target_list(target))
    if _is_dataframe(data):
        if y is None:
            if target is None:
                raise ValueError("a DataFrame needs target= (its target column or columns), "
                                 "or y=")
            return Upload(name or "dataset", csv=data.to_csv(index=False).encode(),
                          target=_target_list(target))
        names = feature_names or [str(c) for c in data.columns]
        X = data.to_numpy(dtype=np.float64)
        y = y.to_numpy() if hasattr(y, "to_numpy") else y
        return Upload(name or "dataset", body=json_body(name or "dataset", X, y, names))
    if y is None:
        raise ValueError("give y (targets or labels) with array-like X, or a CSV path, file or "
                         "DataFrame with target=")
    return Upload(name or "dataset", body=json_body(name or "dataset", data, y, feature_names))
