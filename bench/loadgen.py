"""The open-loop load generator of ``bench/openloop.py`` and ``bench/stalls.py``: pre-built HTTP
requests on a pool of keep-alive connections (asyncio), sent at a fixed offered rate (``offer``:
request i is due at ``start + i / rate``, its latency counted from that due time) or back to back
from a fixed number of connections (``closed``); the gunicorn processes' CPU from ``/proc``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from common import pct

TIMEOUT = 10.0
IDLE_REUSE = 0.5  # seconds; older idle connections may have been closed by the server


@dataclass
class Target:
    name: str
    requests: list[bytes]  # cycled


@dataclass
class Phase:
    target: str
    rate: float
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    connections: int = 0
    server_cpu: float = 0.0  # seconds, all gunicorn processes
    client_cpu: float = 0.0
    clients: int = 0  # a closed loop of this many connections (then ``rate`` is 0)

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies)
        return {"target": self.target, "offered": self.rate, "clients": self.clients,
                "achieved": round(ok / self.elapsed, 1) if self.elapsed else 0.0,
                "requests": ok + sum(self.errors.values()), "errors": sum(self.errors.values()),
                "error_kinds": self.errors, "new_connections": self.connections,
                "p50_ms": pct(self.latencies, 50) * 1e3, "p99_ms": pct(self.latencies, 99) * 1e3,
                "max_ms": max(self.latencies, default=float("nan")) * 1e3,
                "lag_p99_ms": pct(self.lags, 99) * 1e3,
                "server_cpu_ms_per_request": self.server_cpu / max(1, ok) * 1e3,
                "client_cpu_ms_per_request": self.client_cpu / max(1, ok) * 1e3}


def gunicorn_cpu(port: int) -> float:
    """CPU seconds used so far by the gunicorn processes bound to ``port`` (from /proc)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if b"gunicorn" not in cmd or f":{port}".encode() not in cmd:
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except OSError:
            continue
    return total


class Pool:
    """Keep-alive connections to one host, at most ``size`` at once (like wrk's ``-c``): a new
    one when none is idle; a request waits (its latency counting) when all are busy."""

    def __init__(self, host: str, port: int, size: int = 64) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0
        self.slots = asyncio.Semaphore(size)

    async def take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.perf_counter()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if now - since < IDLE_REUSE:
                return reader, writer, True
            writer.close()
        self.opened += 1
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return reader, writer, False

    def give(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.idle.append((reader, writer, time.perf_counter()))

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def exchange(pool: Pool, raw: bytes) -> int:
    async with pool.slots:
        return await _exchange(pool, raw)


async def _exchange(pool: Pool, raw: bytes) -> int:
    """Send one request, read its response; the status code. Retries once on a kept-alive
    connection the server had closed before reading anything from it."""
    for attempt in (0, 1):
        reader, writer, reused = await pool.take()
        try:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            writer.close()
            if reused and attempt == 0 and not getattr(exc, "partial", b""):
                continue
            raise
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
        if close:
            writer.close()
        else:
            pool.give(reader, writer)
        return status
    raise AssertionError("not reached")


async def one(pool: Pool, raw: bytes, due: float, phase: Phase) -> None:
    phase.lags.append(time.perf_counter() - due)
    try:
        status = await asyncio.wait_for(exchange(pool, raw), TIMEOUT)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        kind = type(exc).__name__
    else:
        if status == 200:
            phase.latencies.append(time.perf_counter() - due)
            return
        kind = str(status)
    phase.errors[kind] = phase.errors.get(kind, 0) + 1


async def settle(port: int, quiet: float = 0.1, longest: float = 30.0) -> None:
    """Wait until the server is idle (under ``quiet`` of a core for 0.25 s): requests that the
    last phase gave up on (timeouts) are still being served and would count against the next."""
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        before = gunicorn_cpu(port)
        await asyncio.sleep(0.25)
        if gunicorn_cpu(port) - before < quiet * 0.25:
            return


@contextmanager
def quiet_client() -> Iterator[None]:
    """The client's own collector stays out of a phase: a full collection of this process's
    heap (the service's modules are imported here too) paused the event loop for 41-45 ms,
    once every few phases, and counted as server latency."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def offer(pool: Pool, target: Target, rate: float, seconds: float) -> Phase:
    """Send ``rate * seconds`` requests, request i due at ``start + i / rate`` (once the server
    is idle)."""
    phase = Phase(target.name, rate)

    async def send() -> float:
        start = time.perf_counter() + 0.01
        tasks = []
        for i in range(max(1, int(rate * seconds))):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            raw = target.requests[i % len(target.requests)]
            tasks.append(asyncio.ensure_future(one(pool, raw, due, phase)))
        await asyncio.gather(*tasks)
        return start

    return await _measured(pool, phase, send)


async def closed(pool: Pool, target: Target, clients: int, seconds: float) -> Phase:
    """``clients`` connections for ``seconds``, each sending its next request as soon as its
    last is answered (a closed loop, like ``wrk -c``: the rate is what the server gives; the
    latency is counted from each send)."""
    phase = Phase(target.name, 0.0, clients=clients)

    async def send() -> float:
        start = time.perf_counter()

        async def client(i: int) -> None:
            while time.perf_counter() < start + seconds:
                await one(pool, target.requests[i % len(target.requests)], time.perf_counter(),
                          phase)
                i += clients

        await asyncio.gather(*(client(i) for i in range(clients)))
        return start

    return await _measured(pool, phase, send)


async def _measured(pool: Pool, phase: Phase, send: Callable[[], Awaitable[float]]) -> Phase:
    """Once the server is idle, run ``send`` (it answers the phase's start) with the client's
    collector off; record the phase's time, new connections and CPU."""
    await settle(pool.port)
    with quiet_client():
        opened, cpu0, client0 = pool.opened, gunicorn_cpu(pool.port), time.process_time()
        start = await send()
        phase.elapsed = time.perf_counter() - start
        phase.connections = pool.opened - opened
        phase.server_cpu = gunicorn_cpu(pool.port) - cpu0
        phase.client_cpu = time.process_time() - client0
    return phase


def build(host: str, port: int, method: str, path: str, key: str = "",
          bodies: list[bytes] | None = None) -> list[bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    if not bodies:
        return [(head + "\r\n").encode()]
    return [(head + f"Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n"
             ).encode() + b for b in bodies]
