"""``client.jobs``: create (idempotent), get, list, cancel, history, and ``wait``, which follows
the job's event stream (or polls with backoff when the service has none)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import JobCancelled, JobFailed, WaitTimeout
from .progress import ProgressBar
from .resources import Dataset, Job, Model
from .stream import Event, Follower, NoStream

if TYPE_CHECKING:
    from .client import Client

NETWORK_FIELDS = ("init", "init_scale")
HISTORY_COLUMNS = ("epoch", "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
                   "seconds")
Layers = Sequence[Mapping[str, Any] | tuple[int, str] | int] | str


def parse_layers(layers: Layers) -> list[dict[str, Any]]:
    """Layers as the API takes them, from ``"16:tanh,3:softmax"``, ``[(16, "tanh"), 3]`` or a
    list of dicts (``{"units": 16, "activation": "tanh"}``)."""
    if isinstance(layers, str):
        items: list[Any] = [part.strip() for part in layers.split(",") if part.strip()]
    else:
        items = list(layers)
    out = []
    for item in items:
        if isinstance(item, Mapping):
            out.append(dict(item))
            continue
        if isinstance(item, str):
            units, _, activation = item.partition(":")
        elif isinstance(item, tuple):
            units, activation = item[0], (item[1] if len(item) > 1 else "")
        else:
            units, activation = item, ""
        try:
            layer: dict[str, Any] = {"units": int(units)}
        except (TypeError, ValueError):
            raise ValueError(f"a layer is UNITS or UNITS:ACTIVATION (e.g. 16:tanh), got "
                             f"{item!r}") from None
        if activation:
            layer["activation"] = activation
        out.append(layer)
    if not out:
        raise ValueError("give at least one layer (e.g. '16:tanh,3:softmax')")
    return out


def job_body(spec: Mapping[str, Any] | None, dataset: str | Dataset | None,
             network: Mapping[str, Any] | None, layers: Layers | None,
             training: Mapping[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /v1/jobs`` body: ``spec`` with the keyword arguments merged over it."""
    body: dict[str, Any] = copy.deepcopy(dict(spec or {}))
    if dataset is not None:
        body.pop("dataset", None)
        body["dataset_id"] = dataset.id if isinstance(dataset, Dataset) else dataset
    if network is not None:
        body["network"] = {**body.get("network", {}), **network}
    if layers is not None:
        body.setdefault("network", {})["layers"] = parse_layers(layers)
    for name in NETWORK_FIELDS:
        if name in fields:
            body.setdefault("network", {})[name] = fields.pop(name)
    train = {**body.get("training", {}), **(training or {})}
    optimizer = fields.pop("optimizer", None)
    if optimizer is not None:
        train["optimizer"] = ({"name": optimizer} if isinstance(optimizer, str)
                              else dict(optimizer))
    for name in ("learning_rate", "momentum"):
        if name in fields:
            train.setdefault("optimizer", {})[name] = fields.pop(name)
    train.update(fields)  # anything else is a training field; the service rejects unknown ones
    if train:
        body["training"] = train
    return body


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._stream: bool | None = None  # None: not yet known whether the service streams

    def create(self, spec: Mapping[str, Any] | None = None, *,
               dataset: str | Dataset | None = None, layers: Layers | None = None,
               network: Mapping[str, Any] | None = None,
               training: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
               continue_from: str | Model | None = None, **fields: Any) -> Job:
        """Start a training job.

        ``spec`` is a whole job body (``{"dataset_id", "network", "training"}``); keyword
        arguments go over it: ``dataset`` (an id or a ``Dataset``), ``layers``
        (``"16:tanh,3:softmax"`` or a list), ``network``/``training`` dicts, ``optimizer`` (a
        name or a dict), ``learning_rate``, and any training field (``epochs=200,
        batch_size=32, validation_split=0.2, seed=1, ...``).

        ``continue_from`` (a model or its id) trains that model further: the job takes the
        model's spec, with what you give in its place, and ``epochs`` more epochs; the dataset
        defaults to the model's (``job.spec["continue_from"]`` says what was kept).

        Every call sends an ``Idempotency-Key`` (``idempotency_key`` or a fresh one), so its
        retries never start a second job.

        >>> job = client.jobs.create(dataset=ds, layers="16:tanh,3:softmax", optimizer="adam",
        ...                          learning_rate=0.01, epochs=200, validation_split=0.2)
        """
        body = job_body(spec, dataset, network, layers, training, dict(fields))
        if continue_from is not None:
            body["continue_from"] = {"model_id": continue_from.id
                                     if isinstance(continue_from, Model) else continue_from}
        key = idempotency_key or f"bpc-{uuid.uuid4()}"
        d = self._client.transport.json("POST", "/v1/jobs", json=body,
                                        headers={"Idempotency-Key": key}, idempotent=True)
        return Job.from_json(self._client, d)

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._client, self._client.transport.json("GET",
                                                                       f"/v1/jobs/{job_id}"))

    def list(self, status: str | None = None, *, page_size: int = 100) -> Iterator[Job]:
        """Every job of this tenant, newest first (all pages); ``status`` filters."""
        for d in self._client.transport.pages("/v1/jobs", {"limit": page_size,
                                                            "status": status}):
            yield Job.from_json(self._client, d)

    def cancel(self, job_id: str) -> Job:
        """Ask the job to stop (a queued job never starts; a running one stops within an
        epoch). ``Conflict`` when it has already finished."""
        return Job.from_json(self._client, self._client.transport.json(
            "POST", f"/v1/jobs/{job_id}/cancel"))

    def history(self, job_id: str, *, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every epoch's row (``epoch, loss, val_loss, accuracy, val_accuracy, learning_rate,
        seconds``), in order, across all pages."""
        yield from self._client.transport.pages(f"/v1/jobs/{job_id}/history",
                                                {"limit": page_size})

    def history_arrays(self, job_id: str) -> dict[str, np.ndarray]:
        """The history as one float array per column (NaN where a value is absent)."""
        rows = list(self.history(job_id))
        return {col: np.asarray([np.nan if r.get(col) is None else r[col] for r in rows],
                                dtype=np.int64 if col == "epoch" else np.float64)
                for col in HISTORY_COLUMNS}

    def diagnostics(self, job_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Per-layer diagnostics of each recorded epoch (jobs with ``diagnostics={"every": k}``),
        in order: ``{"epoch", "layers": [{"layer", "activation", "grad_norm_W", ...}]}``."""
        yield from self._client.transport.pages(f"/v1/jobs/{job_id}/diagnostics",
                                                {"limit": page_size})

    def events(self, job_id: str, timeout: float | None = None) -> Iterator[Event]:
        """The job's events live, resumed across dropped connections, until its end:
        ``epoch`` (a history row), ``diagnostics`` (after the row of an epoch that recorded
        them), ``status`` and a last ``end`` (the job); ``ev.json()`` is the data. Returns at
        once when the job ended before (a ``204``); ``NoStream`` when the service has no
        stream; ``TimeoutError`` after ``timeout`` seconds.

        >>> for ev in client.jobs.events(job.id):
        ...     if ev.event == "diagnostics":
        ...         print(ev.json()["epoch"], [r["grad_norm_W"] for r in ev.json()["layers"]])
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        yield from Follower(self._client.transport, job_id).events(deadline)

    def wait(self, job_id: str, timeout: float | None = None, progress: bool = True) -> Job:
        """Block until the job ends and return it; raise ``JobFailed`` / ``JobCancelled`` (with
        the service's reason) when it did not succeed, ``WaitTimeout`` after ``timeout``
        seconds. Follows ``GET /v1/jobs/{id}/events`` when the service streams, else polls
        with backoff; ``progress`` draws a bar (epoch, loss, val_loss, ETA) on stderr."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get(job_id)
        bar = None
        if progress and not job.finished:
            bar = ProgressBar(job.id, job.progress.get("epochs"))
            _show_job(bar, job)
        try:
            if not job.finished and self._stream is not False:
                try:
                    job = self._follow(job, bar, deadline)
                    self._stream = True
                except NoStream:
                    self._stream = False
            if not job.finished:
                job = self._poll(job, bar, deadline)
        finally:
            if bar is not None:
                _show_job(bar, job)
                bar.close()
        return _outcome(job)

    def _follow(self, job: Job, bar: ProgressBar | None, deadline: float | None) -> Job:
        follower = Follower(self._client.transport, job.id)
        try:
            for ev in follower.events(deadline):
                data = ev.json()
                if ev.event == "end" and isinstance(data, dict) and "status" in data:
                    return Job.from_json(self._client, data)
                if bar is not None and isinstance(data, dict):
                    if ev.event == "epoch":
                        prog = data.get("progress") or {}
                        bar.update(epoch=data.get("epoch"), epochs=prog.get("epochs"),
                                   loss=data.get("loss"), val_loss=data.get("val_loss"),
                                   eta=prog.get("eta_seconds"))
                    elif ev.event == "status":
                        bar.update(status=data.get("status"))
        except TimeoutError:
            raise WaitTimeout(f"job {job.id} still {self.get(job.id).status} after the "
                              "timeout") from None
        return self.get(job.id)  # a 204 (ended before) or an end event without a job

    def _poll(self, job: Job, bar: ProgressBar | None, deadline: float | None) -> Job:
        interval = 0.2
        while not job.finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job.id} still {job.status} after the timeout")
            pause = interval if deadline is None else max(0.0, min(interval,
                                                                   deadline - time.monotonic()))
            time.sleep(pause)
            interval = min(interval * 1.5, 2.0)
            job = self.get(job.id)
            if bar is not None:
                _show_job(bar, job)
        return job


def _show_job(bar: ProgressBar, job: Job) -> None:
    metrics = job.metrics or {}
    bar.update(epoch=job.progress.get("epoch"), epochs=job.progress.get("epochs"),
               loss=metrics.get("loss"), val_loss=metrics.get("val_loss"),
               eta=job.progress.get("eta_seconds"), status=job.status)


def _outcome(job: Job) -> Job:
    if job.status == "failed":
        err = job.error or {}
        raise JobFailed(job, err.get("title", "Failed"), err.get("detail", ""))
    if job.status == "cancelled":
        err = job.error or {}
        raise JobCancelled(job, err.get("title", "Cancelled"),
                           err.get("detail", "the job was cancelled"))
    return job
