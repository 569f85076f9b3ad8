"""The predict path: each model's owner and shape and the loaded models, cached per process;
rows converted and checked in one call; the answer made of NumPy arrays, serialised once.

What a web process caches about a model:
- its owner, width and blob, trusted for ``CACHE_TTL_SECONDS`` (1 s) after the database said
  so: a model deleted in another process stops answering here within that time (the process
  that deletes it drops it at once). A cached model costs no database round trip; a busy one
  is looked up again each half of that time, in the background (``service.trust_cache``).
- the loaded ``Model`` itself, the ``MODEL_CACHE_SIZE`` most recently used (a model's weights
  never change; its entry goes when the model is found gone).

The answer (documented in the OpenAPI document, ``PredictOut``):
- ``outputs``: the network's output layer, ``(n, output units)``: the predicted values of a
  regression, the softmax of a classifier, ``[[p]]`` (the probability of ``classes[1]``) for a
  classifier with one sigmoid unit. It is what the downloaded weights compute.
- classifiers also give ``probabilities`` ``(n, len(classes))``, one column per class in
  ``classes`` order (so ``[[1 - p, p]]`` for one sigmoid unit), ``labels`` (the most probable
  class of each row) and ``classes``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from backprop import Model

from . import db, metrics, storage
from .errors import invalid, not_found, too_large
from .models import TrainedModel
from .trust_cache import KeyLocks, TrustCache


class ModelInfo(NamedTuple):
    tenant_id: str
    inputs: int
    blob_id: str


class ModelCache:
    """Per process: model id -> ``ModelInfo`` trusted for ``ttl`` seconds (a ``TrustCache`` of
    up to ``info_size`` of them), and the ``size`` most recently used loaded models. ``clock``
    is ``time.monotonic`` (tests move it on)."""

    def __init__(self, size: int, ttl: float, info_size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.trusted: TrustCache[str, ModelInfo] = TrustCache(ttl, info_size, clock)
        self._models: OrderedDict[str, Model] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: KeyLocks[str] = KeyLocks()

    def get(self, model_id: str, tenant_id: str, session: Callable[[], Session],
            ) -> tuple[ModelInfo, Model]:
        """The model ``model_id`` if ``tenant_id`` owns it, else a 404 problem (the same for a
        model of another tenant as for none). ``session()`` is called only on a miss."""
        info = self.trusted.get(model_id, lambda: self._lookup(model_id, session()),
                                refresh=lambda: self._lookup_in_own_session(model_id))
        if info is None or info.tenant_id != tenant_id:
            raise not_found("model", model_id)
        model = self._models.get(model_id)
        metrics.model_cache_lookup(hit=model is not None)
        if model is None:
            return info, self._load(model_id, info, session)
        with self._lock:
            if model_id in self._models:
                self._models.move_to_end(model_id)
        return info, model

    def drop(self, model_id: str) -> None:
        """Forget the model (it was deleted)."""
        self.trusted.drop(model_id)
        with self._lock:
            self._models.pop(model_id, None)

    def _lookup(self, model_id: str, session: Session) -> ModelInfo | None:
        row = session.execute(select(TrainedModel.tenant_id, TrainedModel.inputs,
                                     TrainedModel.blob_id).where(TrainedModel.id == model_id)
                              ).first()
        if row is None:
            with self._lock:  # gone: let its weights go too
                self._models.pop(model_id, None)
            return None
        return ModelInfo(row.tenant_id, row.inputs, row.blob_id)

    def _lookup_in_own_session(self, model_id: str) -> ModelInfo | None:
        """``_lookup`` for a background refresh (not in a request: its own session)."""
        with db.new_session() as session:
            return self._lookup(model_id, session)

    def _load(self, model_id: str, info: ModelInfo, session: Callable[[], Session]) -> Model:
        with self._loading.hold(model_id):  # one thread loads a model; the others wait for it
            model = self._models.get(model_id)
            if model is None:
                model = Model.from_bytes(storage.get(session(), info.blob_id))
                with self._lock:
                    self._models[model_id] = model
                    while len(self._models) > self.size:
                        self._models.popitem(last=False)
        return model


def process_cache(app: Any) -> ModelCache:
    """The app's (this process's) model cache, made on first use."""
    cache = app.extensions.get("model_cache")
    if cache is None:
        settings = app.config["SETTINGS"]
        cache = app.extensions.setdefault("model_cache", ModelCache(
            settings.model_cache_size, settings.cache_ttl_seconds))
    return cache


def to_array(rows: list[list[float]], width: int, max_rows: int) -> np.ndarray:
    """``rows`` (numbers, checked by the schema) as one float64 ``(n, width)`` array: converted
    and checked in one NumPy call; the row at fault is looked for only when that fails."""
    if len(rows) > max_rows:
        raise too_large("MAX_PREDICT_ROWS", f"{len(rows)} rows in one call, more than "
                        f"{max_rows}", ["inputs"])
    try:
        X = np.array(rows, dtype=np.float64)
    except ValueError:  # rows of different lengths
        X = None
    if X is not None and X.ndim == 2 and X.shape[1] == width:
        return X
    for i, row in enumerate(rows):
        if len(row) != width:
            raise invalid(["inputs", i], f"row {i} has {len(row)} values; the model takes "
                          f"{width} inputs")
    raise invalid(["inputs"], f"must be a list of rows of {width} numbers")  # not reached


def predict(model: Model, X: np.ndarray) -> dict[str, Any]:
    """The answer for rows ``X`` ``(n, inputs)``, as arrays (the JSON provider writes them)."""
    started = time.perf_counter()
    with np.errstate(all="ignore"):  # overflow is answered below, not raised as a warning
        # float64 for the answer: orjson writes a float32 in its shortest float32 form, which a
        # client reads back as a different double; a float64 round-trips exactly, so a client's
        # numbers equal the engine's (and a downloaded model's) bit for bit.
        out = model.predict(X).astype(np.float64, copy=False)
    metrics.observe_prediction(time.perf_counter() - started, len(X))
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise invalid(["inputs", bad], f"row {bad} gives a non-finite output; its values are "
                      "far outside the range the model was trained on")
    encoder = model.encoder
    if encoder is None:
        return {"outputs": out}
    # Model.predict gives the per-class probabilities; with one sigmoid unit, column 1 is p.
    raw = np.ascontiguousarray(out[:, 1:]) if encoder.binary else out
    return {"outputs": raw, "probabilities": out, "labels": encoder.decode(out),
            "classes": encoder.classes}
