"""``Client``: the service over HTTP, with its resources as attributes."""

from __future__ import annotations

import os
from typing import Any

import requests

from .datasets import Datasets
from .jobs import Jobs
from .models import Models
from .transport import Transport

DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """The backprop service.

    ``url`` and ``api_key`` default to ``$BACKPROP_URL`` (else ``http://127.0.0.1:8000``, what
    ``make run`` serves) and ``$BACKPROP_API_KEY``. ``timeout`` is per request, in seconds.
    Connection errors, ``429`` and ``503`` are retried up to ``max_retries`` times with
    exponential backoff from ``backoff`` seconds (jittered, capped at 30 s), or after the
    answer's ``Retry-After``; requests that may have reached the service are retried only when
    that is safe (reads, predictions, and job creation, which carries an ``Idempotency-Key``).

    >>> from backprop_client import Client
    >>> client = Client()
    >>> ds = client.datasets.create("iris.csv", target="species")
    >>> job = client.jobs.create(dataset=ds, layers="16:tanh,3:softmax", epochs=200)
    >>> model = job.wait().model()
    >>> model.predict(X).labels
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 0.5,
                 session: requests.Session | None = None) -> None:
        self.url = (url or os.environ.get("BACKPROP_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("BACKPROP_API_KEY")
        self.transport = Transport(self.url, key, timeout=timeout, max_retries=max_retries,
                                   backoff=backoff, session=session)
        self.datasets = Datasets(self)
        self.jobs = Jobs(self)
        self.models = Models(self)

    def health(self) -> dict[str, Any]:
        """``GET /readyz``: the service's readiness (``{"status", "checks"}``), whatever it is."""
        return self.transport.request("GET", "/readyz", raise_errors=False).json()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"
