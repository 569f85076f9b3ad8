"""Blobs: ``.npz`` archives kept in the database with their sha256."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from backprop import serialize

from .models import Blob, new_id


def put(session: Session, data: bytes) -> Blob:
    blob = Blob(id=new_id("blob"), sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                data=data)
    session.add(blob)
    return blob


def get(session: Session, blob_id: str) -> bytes:
    blob = session.get(Blob, blob_id)
    if blob is None:
        raise LookupError(f"blob {blob_id} is missing")
    return blob.data


def dataset_bytes(X: np.ndarray, Y: np.ndarray, meta: dict[str, Any]) -> bytes:
    """A dataset archive: ``X`` ``(rows, features)``, ``Y`` ``(rows, outputs)`` (float64), or
    for classification ``Y`` ``(rows,)`` int64 class indices into ``meta["classes"]``."""
    return serialize.dump({"X": X, "Y": Y}, meta)


def load_dataset(data: bytes, rows: int, features: int, outputs: int,
                 classification: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    y_shape = (rows,) if classification else (rows, outputs)

    def expect(_: dict[str, Any]) -> serialize.Expected:
        return {"X": ((rows, features), ("float64",)),
                "Y": (y_shape, ("int64",) if classification else ("float64",))}

    arrays, meta = serialize.load(data, expect)
    return arrays["X"], arrays["Y"], meta
