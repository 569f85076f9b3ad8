"""gunicorn's threaded worker, guarded against slow clients, answering its own errors as problems.

Slow clients: gunicorn's ``gthread`` worker only gives a connection a thread once bytes arrive,
but from then on the thread reads the request line, headers and body with blocking reads, so a
client sending one byte a second holds a thread for as long as it likes; a handful of them take
every thread of every process. Here each request must arrive within ``CLIENT_TIMEOUT_SECONDS``
plus one second per ``CLIENT_MIN_BYTES_PER_SECOND`` bytes received (the rule of Apache's
``mod_reqtimeout``): an honest upload never meets it, a dribbling client is answered ``408`` and
disconnected, freeing its thread. Writes get an idle timeout of their own.

Errors gunicorn answers itself (a request line over ``limit_request_line``: 414, headers over
their limits: 431, a malformed request line or header: 400, the timeout above: 408) are RFC 9457
problem details like every other answer of the service, not gunicorn's HTML page.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import orjson
from gunicorn import glogging, util
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import RequestTimeout

PROBLEM_JSON = "application/problem+json"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


class Logger(glogging.Logger):
    """gunicorn's logger without the access log. The app writes one line per request
    (``service.observe``); with ``logconfig_dict`` set, gunicorn would still build every
    request's access-log atoms (headers, times, a dozen formatted fields) for a logger that
    drops them."""

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        return None


class ClientTimeout(RequestTimeout):
    """The client took too long to send its request (a 408 problem, in Flask or in gunicorn)."""

    description = ("the request did not arrive in time (CLIENT_TIMEOUT_SECONDS, "
                   "CLIENT_MIN_BYTES_PER_SECOND); send it at a steady rate")


class GuardedSocket:
    """A client socket whose reads share one deadline per request, extended by the bytes read."""

    def __init__(self, sock: socket.socket, timeout: float, min_rate: float,
                 write_timeout: float) -> None:
        self._sock = sock
        self._timeout, self._min_rate, self._write_timeout = timeout, min_rate, write_timeout
        self._deadline: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def new_request(self) -> None:
        self._deadline = None  # starts at the request's first read

    def recv(self, size: int, *flags: int) -> bytes:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._timeout
        left = self._deadline - now
        if left <= 0:
            raise ClientTimeout()
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(size, *flags)
        except TimeoutError:
            raise ClientTimeout() from None
        self._deadline += len(data) / self._min_rate
        return data

    def send(self, data: bytes, *flags: int) -> int:
        self._sock.settimeout(self._write_timeout)
        return self._sock.send(data, *flags)

    def sendall(self, data: bytes, *flags: int) -> None:
        self._sock.settimeout(self._write_timeout)
        self._sock.sendall(data, *flags)


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, as problem details."""
    body = orjson.dumps({"type": "about:blank", "title": reason, "status": status_int,
                         "detail": mesg or reason})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: {PROBLEM_JSON}\r\nX-Content-Type-Options: nosniff\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin1") + body)


class GuardedThreadWorker(ThreadWorker):
    """``gthread`` with per-request read deadlines and problem+json error answers."""

    def init_process(self) -> None:
        self.client_timeout = _env_float("CLIENT_TIMEOUT_SECONDS", 20.0)
        self.client_min_rate = _env_float("CLIENT_MIN_BYTES_PER_SECOND", 500.0)
        self.write_timeout = _env_float("CLIENT_WRITE_TIMEOUT_SECONDS", 60.0)
        # gunicorn's base worker writes every error it answers itself through this function.
        util.write_error = write_problem
        super().init_process()

    def accept(self, listener: Any) -> None:
        real = listener.accept

        def guarded_accept() -> tuple[Any, Any]:
            sock, addr = real()
            return GuardedSocket(sock, self.client_timeout, self.client_min_rate,
                                 self.write_timeout), addr

        super().accept(_Listener(listener, guarded_accept))

    def handle(self, conn: Any) -> Any:
        if isinstance(conn.sock, GuardedSocket):
            conn.sock.new_request()
        return super().handle(conn)

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        try:
            return super()._keepalive_after(conn, keepalive)
        except ClientTimeout:  # the unread rest of a body did not come: close the connection
            return False

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ClientTimeout):
            self.log.warning("Slow request from ip=%s: closed after the client timeout",
                             (addr or ("",))[0])
            try:
                write_problem(client, 408, "Request Timeout", ClientTimeout.description)
            except Exception:
                self.log.debug("Failed to send error message.")
            return
        super().handle_error(req, client, addr, exc)


class _Listener:
    """The listening socket, accepting through ``accept``."""

    def __init__(self, sock: Any, accept: Any) -> None:
        self._sock, self.accept = sock, accept

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
