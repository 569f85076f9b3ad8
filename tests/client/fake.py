"""A scripted HTTP server for what a real stack cannot be made to do on cue (a 503 with
Retry-After, a dropped connection, an event stream cut mid-way): each request takes the next
scripted answer for its path, and every request is recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        self.server.requests.append({"method": self.command, "path": path,
                                     "headers": dict(self.headers), "body": body})
        script = self.server.script.get((self.command, path))
        if not script:
            return self.send_json(404, {"title": "Not Found", "status": 404,
                                        "detail": f"nothing scripted for {path}"},
                                  "application/problem+json")
        answer = script.pop(0) if len(script) > 1 else script[0]
        answer(self)

    do_GET = do_POST = do_DELETE = _handle  # noqa: N815 - http.server names

    def send_json(self, status: int, body: Any, ctype: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_events(self, chunks: list[str], *, complete: bool) -> None:
        """Chunk-encoded text/event-stream; without ``complete`` the connection is cut
        after the chunks (no terminating chunk)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for text in chunks:
            data = text.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if complete:
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def drop(self) -> None:
        """Close the connection without answering."""
        self.close_connection = True


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.script[(method, path)] = list(answers)

    def sent(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]


def json_answer(status: int, body: Any, **headers: str) -> Answer:
    ctype = "application/problem+json" if status >= 400 else "application/json"
    return lambda h: h.send_json(status, body, ctype, headers)


def serve() -> Iterator[FakeServer]:
    server = FakeServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
