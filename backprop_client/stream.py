"""Server-sent events (``text/event-stream``), parsed as the WHATWG spec says, and followed across
dropped connections with ``Last-Event-ID``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from urllib3.exceptions import ReadTimeoutError

from .errors import APIError, ConnectionFailed
from .transport import Transport


@dataclass
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a UTF-8 byte stream, split on LF (a CR before it dropped) and nowhere else: a
    U+2028 inside JSON data is not a line end here, as ``str.splitlines`` would make it."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line.removesuffix(b"\r").decode("utf-8", "replace")
    if buffer:
        yield buffer.removesuffix(b"\r").decode("utf-8", "replace")


def _read_timeout(exc: BaseException) -> bool:
    return isinstance(exc, requests.ReadTimeout) or any(
        isinstance(arg, ReadTimeoutError) for arg in getattr(exc, "args", ()))


def parse(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a stream (without their line endings). Comments (``:``) are
    keep-alives; an event without ``data`` is not dispatched; ``id`` persists until changed."""
    event, data, last_id = "", [], None
    for line in lines:
        if not line:
            if data:
                yield Event(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value


class NoStream(Exception):  # noqa: N818
    """The service has no event stream for this job (an older service): poll instead."""


class Follower:
    """Events of one job's stream until its ``end`` event, reconnecting after a dropped
    connection or a read timeout with the last event id seen."""

    def __init__(self, transport: Transport, job_id: str, *, read_timeout: float = 30.0,
                 max_reconnects: int = 20) -> None:
        self.transport, self.job_id = transport, job_id
        self.read_timeout, self.max_reconnects = read_timeout, max_reconnects
        self.last_id: str | None = None
        self.ended = False  # 204: the stream ended before this connection

    def _open(self, read_timeout: float) -> requests.Response | None:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        try:
            resp = self.transport.request(
                "GET", f"/v1/jobs/{self.job_id}/events", headers=headers, stream=True,
                timeout=(self.transport.timeout, read_timeout))
        except APIError as exc:
            if exc.status in (404, 405, 406, 501):
                raise NoStream(str(exc)) from exc
            raise
        if resp.status_code == 204:
            resp.close()
            return None
        if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            resp.close()
            raise NoStream(f"the events answer is {resp.headers.get('Content-Type')!r}")
        return resp

    def events(self, deadline: float | None = None) -> Iterator[Event]:
        """Yields every event (``epoch``, ``status``, ``end``, ...); returns after ``end`` or a
        ``204``. Raises ``TimeoutError`` at ``deadline`` (a ``time.monotonic()`` value)."""
        drops = 0
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            read_timeout = self.read_timeout if remaining is None else min(self.read_timeout,
                                                                           max(remaining, 0.1))
            resp = self._open(read_timeout)
            if resp is None:
                self.ended = True
                return
            try:
                with resp:
                    # chunk_size=None: each chunk as it arrives (the stream is chunk-encoded)
                    for ev in parse(lines(resp.iter_content(chunk_size=None))):
                        if ev.id is not None:
                            self.last_id = ev.id
                        yield ev
                        if ev.event == "end":
                            self.ended = True
                            return
                        if deadline is not None and time.monotonic() >= deadline:
                            raise TimeoutError  # events keep coming, but the time is up
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError from exc
                if _read_timeout(exc):  # a quiet stream (a long epoch): ask again at once
                    continue
                drops += 1
                if drops > self.max_reconnects:
                    raise ConnectionFailed(f"the event stream of job {self.job_id} keeps "
                                           f"dropping: {exc}") from exc
                time.sleep(self.transport.delay(min(drops, 4)))
                continue
            # the server closed the stream without an end event: reconnect where it left off
            drops += 1
            if drops > self.max_reconnects:
                raise NoStream("the event stream keeps closing without an end event")
            time.sleep(self.transport.delay(min(drops, 4)))
