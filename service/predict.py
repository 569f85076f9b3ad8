"""The predict path: models kept in memory (LRU per process), rows checked one by one."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from backprop import Model

from . import metrics
from .errors import invalid, too_large


class ModelCache:
    """The ``size`` most recently used models of this process, by model id."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Model] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_id: str, load: Any) -> Model:
        with self._lock:
            model = self._items.get(model_id)
            if model is not None:
                self._items.move_to_end(model_id)
                metrics.model_cache_lookup(hit=True)
                return model
        metrics.model_cache_lookup(hit=False)
        model = Model.from_bytes(load())
        with self._lock:
            self._items[model_id] = model
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return model

    def drop(self, model_id: str) -> None:
        with self._lock:
            self._items.pop(model_id, None)


def check_rows(rows: list[list[float]], width: int, max_rows: int) -> np.ndarray:
    if len(rows) > max_rows:
        raise too_large("MAX_PREDICT_ROWS", f"{len(rows)} rows in one call, more than "
                        f"{max_rows}", ["inputs"])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise invalid(["inputs", i], f"row {i} has {len(row)} values; the model takes "
                          f"{width} inputs")
    return np.asarray(rows, dtype=np.float64)


def predict(model: Model, X: np.ndarray) -> dict[str, Any]:
    started = time.perf_counter()
    with np.errstate(all="ignore"):  # overflow is answered below, not raised as a warning
        out = model.predict(X)
    metrics.observe_prediction(time.perf_counter() - started, len(X))
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise invalid(["inputs", bad], f"row {bad} gives a non-finite output; its values are "
                      "far outside the range the model was trained on")
    result: dict[str, Any] = {"outputs": out.tolist()}
    if model.encoder is not None:
        result["labels"] = model.encoder.decode(out)
        result["probabilities"] = result["outputs"]
    return result
