"""What the service returns, as typed objects: ``Dataset``, ``Job``, ``Model``, ``Prediction``.
Each keeps the JSON it was made from in ``raw`` and the client that fetched it, so that its
verbs (``job.wait()``, ``model.predict(X)``, ...) need no other argument."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import backprop

    from .client import Client
    from .stream import Event

FINISHED = ("succeeded", "failed", "cancelled")


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass
class Dataset:
    id: str
    name: str
    rows: int
    features: int
    outputs: int
    task: str
    classes: list[Any] | None
    feature_names: list[str]
    sha256: str
    created_at: datetime | None
    raw: dict[str, Any] = field(repr=False)
    _client: Client = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, client: Client, d: dict[str, Any]) -> Dataset:
        return cls(d["id"], d["name"], d["rows"], d["features"], d["outputs"], d["task"],
                   d.get("classes"), d.get("feature_names") or [], d.get("sha256", ""),
                   _when(d.get("created_at")), d, client)

    def delete(self) -> None:
        self._client.datasets.delete(self.id)


@dataclass
class Job:
    id: str
    status: str
    dataset_id: str
    spec: dict[str, Any]
    progress: dict[str, Any]
    metrics: dict[str, Any] | None
    model_id: str | None
    error: dict[str, str] | None
    attempts: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: dict[str, Any] = field(repr=False)
    _client: Client = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, client: Client, d: dict[str, Any]) -> Job:
        return cls(d["id"], d["status"], d["dataset_id"], d.get("spec") or {},
                   d.get("progress") or {}, d.get("metrics"), d.get("model_id"), d.get("error"),
                   d.get("attempts", 0), _when(d.get("created_at")), _when(d.get("started_at")),
                   _when(d.get("finished_at")), d, client)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def refresh(self) -> Job:
        """The job as it is now (a new object)."""
        return self._client.jobs.get(self.id)

    def wait(self, timeout: float | None = None, progress: bool = True) -> Job:
        """Block until the job ends; see ``Jobs.wait``."""
        return self._client.jobs.wait(self.id, timeout=timeout, progress=progress)

    def cancel(self) -> Job:
        return self._client.jobs.cancel(self.id)

    def history(self) -> Iterator[dict[str, Any]]:
        """Every epoch's row, in order (all pages)."""
        return self._client.jobs.history(self.id)

    def history_arrays(self) -> dict[str, np.ndarray]:
        return self._client.jobs.history_arrays(self.id)

    def diagnostics(self) -> Iterator[dict[str, Any]]:
        """Per-layer diagnostics of each recorded epoch; see ``Jobs.diagnostics``."""
        return self._client.jobs.diagnostics(self.id)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """The job's events live until its end; see ``Jobs.events``."""
        return self._client.jobs.events(self.id, timeout=timeout)

    def model(self) -> Model:
        """The model this job made (a succeeded job; a cancelled one keeps what it learnt when
        the service saved it)."""
        if not self.model_id:
            raise ValueError(f"job {self.id} ({self.status}) has no model")
        return self._client.models.get(self.model_id)


@dataclass
class Prediction:
    """``outputs`` ``(n_samples, n_outputs)``; for classifiers also ``labels`` ``(n_samples,)``
    and ``probabilities`` ``(n_samples, n_classes)`` (equal to ``outputs``)."""

    outputs: np.ndarray
    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None


@dataclass
class Model:
    id: str
    job_id: str
    dataset_id: str
    spec: dict[str, Any]
    inputs: int
    outputs: int
    task: str
    classes: list[Any] | None
    feature_names: list[str]
    metrics: dict[str, Any]
    created_at: datetime | None
    raw: dict[str, Any] = field(repr=False)
    _client: Client = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, client: Client, d: dict[str, Any]) -> Model:
        return cls(d["id"], d["job_id"], d["dataset_id"], d.get("spec") or {}, d["inputs"],
                   d["outputs"], d["task"], d.get("classes"), d.get("feature_names") or [],
                   d.get("metrics") or {}, _when(d.get("created_at")), d, client)

    def predict(self, X: Any) -> Prediction:
        return self._client.models.predict(self.id, X)

    def download(self, path: str | Path | None = None) -> backprop.Model:
        return self._client.models.download(self.id, path)

    @property
    def partial(self) -> dict[str, Any] | None:
        """``{"reason", "epoch", "epochs"}`` when its job stopped before the end (cancelled,
        time limit): the best weights so far."""
        return self.raw.get("partial")

    @property
    def parent_model_id(self) -> str | None:
        return self.raw.get("parent_model_id")

    def continue_training(self, epochs: int | None = None, **fields: Any) -> Job:
        """A job that trains this model further (``client.jobs.create(continue_from=...)``):
        ``epochs`` more, with any other job field to change (``optimizer``, ``dataset``, ...)."""
        if epochs is not None:
            fields["epochs"] = epochs
        return self._client.jobs.create(continue_from=self, **fields)

    def delete(self) -> None:
        self._client.models.delete(self.id)
