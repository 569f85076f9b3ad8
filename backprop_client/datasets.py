"""``client.datasets``: upload, get, list, delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .data import upload
from .resources import Dataset

if TYPE_CHECKING:
    from .client import Client


class Datasets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def create(self, data: Any, y: Any = None, *, name: str | None = None,
               target: str | list[str] | None = None,
               feature_names: list[str] | None = None) -> Dataset:
        """Upload a dataset.

        ``data`` is one of:

        - ``X`` as a NumPy array or nested lists ``(n_samples, n_features)`` with ``y``: numbers
          ``(n_samples,)`` or ``(n_samples, n_outputs)`` for regression, or 1-D strings or
          integers for classification;
        - a CSV path or an open file, with ``target=`` naming the target column(s) (a
          non-numeric target column means classification);
        - a pandas DataFrame with ``target=`` (its target column(s)), or with ``y``.

        ``name`` defaults to the file's stem. Returns the stored ``Dataset``.

        >>> ds = client.datasets.create("iris.csv", target="species")
        >>> ds = client.datasets.create([[0, 0], [0, 1], [1, 0], [1, 1]], [0, 1, 1, 0.0],
        ...                             name="xor")
        """
        up = upload(data, y, name=name, target=target, feature_names=feature_names)
        t = self._client.transport
        if up.csv is not None:
            d = t.json("POST", "/v1/datasets", params={"name": up.name, "target": up.target},
                       data=up.csv, headers={"Content-Type": "text/csv"})
        else:
            d = t.json("POST", "/v1/datasets", json=up.body)
        return Dataset.from_json(self._client, d)

    def get(self, dataset_id: str) -> Dataset:
        return Dataset.from_json(self._client,
                                 self._client.transport.json("GET", f"/v1/datasets/{dataset_id}"))

    def list(self, *, page_size: int = 100) -> Iterator[Dataset]:
        """Every dataset of this API key's tenant, newest first (all pages)."""
        for d in self._client.transport.pages("/v1/datasets", {"limit": page_size}):
            yield Dataset.from_json(self._client, d)

    def delete(self, dataset_id: str) -> None:
        """Delete a dataset; ``Conflict`` while a queued or running job uses it."""
        self._client.transport.request("DELETE", f"/v1/datasets/{dataset_id}")
