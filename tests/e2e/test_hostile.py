"""A hostile client against real gunicorn processes: slow clients, requests gunicorn refuses
itself, one rate limit across web processes, the rate limiter's Redis killed."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import Stack, free_port

PROBLEM_JSON = "application/problem+json"


def _stack(tmp: Path, **env: str) -> Stack:
    return Stack(tmp, f"sqlite:///{tmp / 'service.db'}", "filesystem://", **env)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The API only, 2 processes x 2 threads, a 2 s client timeout, a 10-per-minute limit."""
    s = _stack(tmp_path_factory.mktemp("hostile"), GUNICORN_THREADS="2",
               CLIENT_TIMEOUT_SECONDS="2", RATE_LIMIT="10 per minute")
    s.start(only=("api",))
    yield s
    s.stop()


def _raw(stack: Stack, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a fresh connection; the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return _parse(b"".join(chunks))


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, (status, body[:300])
    assert headers["content-type"] == PROBLEM_JSON, headers
    doc = json.loads(body)
    assert doc["status"] == expected and doc["title"] and doc["detail"], doc
    assert "<html" not in body.decode().lower()


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /v1/datasets?" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
     + b"\r\n", 431),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
    (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
])
def test_gunicorn_own_answers_are_problems(api: Stack, request_bytes: bytes,
                                           status: int) -> None:
    _assert_problem(*_raw(api, request_bytes), status)


def test_openapi_documents_gunicorn_answers(api: Stack) -> None:
    doc = api.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for code in ("400", "414", "431"):
                content = op["responses"][code]["content"]
                assert PROBLEM_JSON in content, (path, method, code)


def _dribble(stack: Stack, head: bytes, tail: bytes, seconds: float, got: list[bytes]) -> None:
    """Send ``head`` at once, then ``tail`` one byte a second; keep what the server answers."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=seconds + 10)
    try:
        sock.sendall(head)
        deadline = time.monotonic() + seconds
        for byte in tail:
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(1.0)
        sock.settimeout(1.0)
        try:
            got.append(sock.recv(65536))
        except OSError:
            got.append(b"")
    finally:
        sock.close()


def test_slow_clients_do_not_stall_the_api(api: Stack) -> None:
    """More dribbling sockets than the API has threads (2 processes x 2): others still answer."""
    auth = f"Authorization: Bearer {api.key}\r\n".encode()
    slow_body = (b"POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + auth + b"Content-Length: 400\r\n\r\n", b'{"name": "' + b"x" * 380)
    slow_head = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"y" * 100)
    got: list[bytes] = []
    dribblers = [threading.Thread(target=_dribble, args=(api, *kind, 30.0, got), daemon=True)
                 for kind in (slow_body, slow_head) * 3]
    for t in dribblers:
        t.start()
    time.sleep(1.5)  # every thread of the API now holds a dribbling request
    try:
        for _ in range(4):
            with requests.Session() as fresh:  # new connections, either process
                assert fresh.get(api.base + "/healthz", timeout=15).status_code == 200
                r = fresh.get(api.base + "/v1/models",
                              headers={"Authorization": f"Bearer {api.key}"}, timeout=15)
                assert r.status_code in (200, 429)
            time.sleep(0.5)
    finally:
        for t in dribblers:
            t.join(timeout=40)
    answered = [_parse(raw) for raw in got if raw]
    assert answered, "the slow clients were not answered"
    for status, headers, body in answered:
        _assert_problem(status, headers, body, 408)


def test_one_rate_limit_across_web_processes(api: Stack) -> None:
    """RATE_LIMIT=10 per minute on the embedded run (2 gunicorn processes, no Redis)."""
    key_header = {"Authorization": f"Bearer {api.key}"}

    def one(_: int) -> int:
        with requests.Session() as fresh:  # a new connection each time: both processes serve
            return fresh.get(api.base + "/v1/datasets", headers=key_header, timeout=15
                             ).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(40)))
    assert set(codes) <= {200, 429}
    # the slow-client test may have spent a few of this minute's 10 already
    assert codes.count(200) <= 10, codes
    assert codes.count(429) >= 30


@pytest.fixture()
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    yield f"redis://127.0.0.1:{port}/0", proc
    proc.kill()
    proc.wait()


def test_rate_limiter_store_down_the_api_answers(tmp_path: Path, private_redis: Any) -> None:
    url, proc = private_redis
    s = _stack(tmp_path, REDIS_URL=url, RATE_LIMIT="1000 per minute").start(only=("api",))
    try:
        assert s.get("/v1/datasets").status_code == 200
        assert s.get("/readyz").json()["checks"]["rate_limit_store"] == "ok"
        proc.kill()
        proc.wait()
        for path in ("/v1/datasets", "/v1/jobs", "/v1/models"):
            r = s.get(path)
            assert r.status_code == 200, (path, r.text)
        ready = s.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["rate_limit_store"].startswith("unreachable")
        assert "rate limiter store (redis) unreachable" in s.logs("api")
    finally:
        s.stop()
