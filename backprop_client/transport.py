"""HTTP to the service: one ``requests.Session``, the API key, timeouts, and retries with
exponential backoff (full jitter) on connection errors, ``429`` and ``503``, honouring
``Retry-After``. Error answers become typed exceptions (``errors.error_for``)."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from . import __version__
from .errors import ConnectionFailed, error_for

RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After raises instead of sleeping that long


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request surely did not reach the service (the connection was refused or
    never made), so that even a non-idempotent request can be sent again."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class Transport:
    """Sends requests to ``base_url``; see ``Client`` for the parameters."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float, max_retries: int,
                 backoff: float, max_backoff: float = 30.0,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout, self.max_retries = timeout, max_retries
        self.backoff, self.max_backoff = backoff, max_backoff
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"backprop-client/{__version__}"
        self.session.headers["Accept"] = "application/json, application/problem+json"
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        self.session.close()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...)."""
        if retry_after is not None:
            return retry_after
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))

    def request(self, method: str, path: str, *, idempotent: bool | None = None,
                timeout: float | tuple[float, float] | None = None, stream: bool = False,
                raise_errors: bool = True, **kwargs: Any) -> requests.Response:
        """One call, retried when that is safe. ``idempotent`` (default: by method) allows a
        retry after the request may have reached the service (a read timeout, a dropped
        connection); a refused connection, a ``429`` and a ``503`` are always retried.
        Raises an ``APIError`` subclass for an error answer unless ``raise_errors`` is false,
        ``ConnectionFailed`` when the service cannot be reached."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self.session.request(method, url, timeout=timeout or self.timeout,
                                            stream=stream, **kwargs)
            except requests.RequestException as exc:
                if not isinstance(exc, requests.ConnectionError | requests.Timeout):
                    raise ConnectionFailed(f"{method} {url}: {exc}") from exc
                if attempt > self.max_retries or not (idempotent or _never_sent(exc)):
                    reason = getattr(exc.args[0], "reason", None) if exc.args else None
                    raise ConnectionFailed(f"cannot reach {self.base_url} ({method} {path}, "
                                           f"{attempt} attempts): {reason or exc}") from exc
                time.sleep(self.delay(attempt))
                continue
            if resp.status_code in RETRY_STATUSES and attempt <= self.max_retries:
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                if wait is None or wait <= MAX_RETRY_AFTER:
                    resp.close()
                    time.sleep(self.delay(attempt, wait))
                    continue
            if resp.status_code >= 400 and raise_errors:
                if stream:
                    resp.content  # noqa: B018 - read the problem body before raising
                raise error_for(resp)
            return resp

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        return resp.json() if resp.content else None

    def pages(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """Every item of a paginated list, following ``next_cursor``."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        while True:
            page = self.json("GET", path, params=query)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]
