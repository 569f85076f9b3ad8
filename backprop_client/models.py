"""``client.models``: get, list, predict (chunked), download (a local ``backprop.Model``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import PayloadTooLarge
from .resources import Model, Prediction

if TYPE_CHECKING:
    import backprop

    from .client import Client

DEFAULT_PREDICT_ROWS = 10_000  # the service's documented MAX_PREDICT_ROWS default


class Models:
    def __init__(self, client: Client) -> None:
        self._client = client
        self.predict_rows = DEFAULT_PREDICT_ROWS  # lowered when the service answers 413

    def get(self, model_id: str) -> Model:
        return Model.from_json(self._client,
                               self._client.transport.json("GET", f"/v1/models/{model_id}"))

    def list(self, *, page_size: int = 100) -> Iterator[Model]:
        """Every model of this API key's tenant, newest first (all pages)."""
        for d in self._client.transport.pages("/v1/models", {"limit": page_size}):
            yield Model.from_json(self._client, d)

    def delete(self, model_id: str) -> None:
        self._client.transport.request("DELETE", f"/v1/models/{model_id}")

    def predict(self, model_id: str, X: Any) -> Prediction:
        """Predict ``X`` ``(n_samples, n_features)`` (a single row may be 1-D).

        Rows are sent in chunks under the service's ``MAX_PREDICT_ROWS`` (learnt from its
        ``413`` answer); the result is one ``Prediction`` of NumPy arrays, in row order."""
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise ValueError(f"X must have shape (n_samples, n_features), got {rows.shape}")
        parts: list[dict[str, Any]] = []
        start = 0
        while start < len(rows):
            chunk = rows[start:start + self.predict_rows]
            try:
                parts.append(self._client.transport.json(
                    "POST", f"/v1/models/{model_id}/predict", json={"inputs": chunk.tolist()},
                    idempotent=True))
            except PayloadTooLarge as exc:
                if len(chunk) == 1:
                    raise
                self.predict_rows = _smaller(exc, len(chunk))
                continue
            start += len(chunk)
        outputs = np.concatenate([np.asarray(p["outputs"], dtype=np.float64) for p in parts])
        if parts[0].get("labels") is None:
            return Prediction(outputs)
        labels = np.asarray([label for p in parts for label in p["labels"]])
        return Prediction(outputs, labels, outputs)

    def download(self, model_id: str, path: str | Path | None = None) -> backprop.Model:
        """The model's weights and preprocessing as a ``backprop.Model`` that predicts locally
        with the service's numbers; also written to ``path`` (a ``.npz``) when given."""
        import backprop

        data = self._client.transport.request("GET", f"/v1/models/{model_id}/weights").content
        if path is not None:
            Path(path).write_bytes(data)
        return backprop.Model.from_bytes(data)


def _smaller(exc: PayloadTooLarge, sent: int) -> int:
    """The row limit named in the 413 (``... more than N ...``) when it is below what was sent,
    else half (the body itself was too large)."""
    m = re.search(r"more than (\d+)", exc.detail)
    limit = int(m.group(1)) if m else 0
    return limit if 0 < limit < sent else max(1, sent // 2)
