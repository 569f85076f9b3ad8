"""Open-loop load: predictions at a fixed offered request rate, beside ``GET /healthz``.

    .venv/bin/python bench/openloop.py [--seconds 8] [--stacks ...] [--workers 2] [--threads 16]

For each stack (SQLite + the filesystem broker; PostgreSQL + Redis, with Redis also holding the
rate-limit counters as in docker-compose) it starts API + worker with the ``make run`` launcher,
trains a 784-256-128-10 classifier through the API, then offers, phase after phase:
1-row predicts and ``GET /healthz`` (the bare Flask + gunicorn reference) at 250, 500 and
1,000 requests/s; 100-row predicts and ``/healthz`` at 50/s; ``/healthz`` and 1-row predicts
from 8 connections in a closed loop (each sends its next request when its last is answered: the
throughput 8 clients get, shown as ``c8``); then 1-row predicts at rising
rates (x1.25 from 1,000) until the p99 reaches 25 ms, errors appear or the server falls behind.

Open loop: request i is due at ``start + i / rate`` whatever happened to the others, and its
latency is counted from that due time (so a slow server, or a late client, shows as latency
instead of as a lower rate: no coordinated omission). Requests are pre-built bytes on up to
64 keep-alive connections (``--connections``; a request waits for one when all are busy). The
rate limit is raised to 1,000,000/min so that it never answers 429 but still does its work on
every request. Each phase starts once the server is idle again, and runs with the client's
garbage collector off (its heap frozen and collected before the phase).
Errors: anything but a 200 (connection errors and 10 s timeouts included). ``lag`` is how late
the client sent (its own share of the latency). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from common import STACKS, pct, session, stack, train_wide

from service import gunicorn_conf

TIMEOUT = 10.0
IDLE_REUSE = 0.5  # seconds; older idle connections may have been closed by the server
P99_BOUND = 0.025
CLOSED_CLIENTS = 8


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
    await settle(pool.port)
    with quiet_client():
        return await _offer(pool, target, rate, seconds)


async def closed(pool: Pool, target: Target, clients: int, seconds: float) -> Phase:
    """``clients`` connections for ``seconds``, each sending its next request as soon as its
    last is answered (a closed loop, like ``wrk -c``: the rate is what the server gives; the
    latency is counted from each send)."""
    await settle(pool.port)
    with quiet_client():
        phase, opened = Phase(target.name, 0.0, clients=clients), pool.opened
        cpu0, client0 = gunicorn_cpu(pool.port), time.process_time()
        start = time.perf_counter()
        end = start + seconds

        async def client(i: int) -> None:
            while time.perf_counter() < end:
                await one(pool, target.requests[i % len(target.requests)], time.perf_counter(),
                          phase)
                i += clients

        await asyncio.gather(*(client(i) for i in range(clients)))
        phase.elapsed = time.perf_counter() - start
        phase.connections = pool.opened - opened
        phase.server_cpu = gunicorn_cpu(pool.port) - cpu0
        phase.client_cpu = time.process_time() - client0
    return phase


async def _offer(pool: Pool, target: Target, rate: float, seconds: float) -> Phase:
    phase, opened = Phase(target.name, rate), pool.opened
    cpu0, client0 = gunicorn_cpu(pool.port), time.process_time()
    n = max(1, int(rate * seconds))
    start = time.perf_counter() + 0.01
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        raw = target.requests[i % len(target.requests)]
        tasks.append(asyncio.ensure_future(one(pool, raw, due, phase)))
    await asyncio.gather(*tasks)
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


async def drive(base: str, key: str, model_id: str, X: np.ndarray, seconds: float,
                max_rate: float, connections: int) -> list[dict[str, Any]]:
    host, port = base.removeprefix("http://").split(":")
    pool = Pool(host, int(port), connections)
    path = f"/v1/models/{model_id}/predict"
    ones = [orjson.dumps({"inputs": X[i:i + 1].tolist()}) for i in range(64)]
    hundreds = [orjson.dumps({"inputs": X[i:i + 100].tolist()}) for i in range(0, 150, 50)]
    healthz = Target("healthz", build(host, int(port), "GET", "/healthz"))
    predict_1 = Target("predict_1", build(host, int(port), "POST", path, key, ones))
    predict_100 = Target("predict_100", build(host, int(port), "POST", path, key, hundreds))
    out: list[dict[str, Any]] = []

    def report(phase: Phase, ramp: bool = False) -> dict[str, Any]:
        s = {**phase.summary(), "ramp": ramp}
        offered = f"{s['offered']:>6.0f}/s" if not s["clients"] else f"{s['clients']:>3} conns"
        print(f"  {s['target']:12} {offered} -> {s['achieved']:>7.1f}/s  p50 "
              f"{s['p50_ms']:6.2f}  p99 {s['p99_ms']:7.2f}  max {s['max_ms']:7.1f} ms  errors "
              f"{s['errors']} {s['error_kinds'] or ''}  lag p99 {s['lag_p99_ms']:.2f} ms  "
              f"conns +{s['new_connections']}  cpu/req: server "
              f"{s['server_cpu_ms_per_request']:.2f}, client "
              f"{s['client_cpu_ms_per_request']:.2f} ms", flush=True)
        out.append(s)
        return s

    for target in (predict_1, predict_100, healthz):  # warm up every web process
        await offer(pool, target, 20 if target is predict_100 else 200, 2)
    for rate in (250, 500, 1000):
        for target in (healthz, predict_1):
            report(await offer(pool, target, rate, seconds))
    for target in (healthz, predict_100):
        report(await offer(pool, target, 50, seconds))
    for target in (healthz, predict_1):  # closed loop: what 8 clients get back to back
        report(await closed(pool, target, CLOSED_CLIENTS, seconds))
    rate = 1000 * 1.25
    while rate <= max_rate:
        s = report(await offer(pool, predict_1, rate, max(3.0, seconds / 2)), ramp=True)
        if s["errors"] or s["p99_ms"] >= P99_BOUND * 1e3 or s["achieved"] < 0.95 * rate:
            break
        rate *= 1.25
    pool.close()
    return out


def highest_rate(phases: list[dict[str, Any]]) -> float | None:
    good = [p["offered"] for p in phases if p["target"] == "predict_1" and not p["clients"]
            and not p["errors"]
            and p["p99_ms"] < P99_BOUND * 1e3 and p["achieved"] >= 0.95 * p["offered"]]
    return max(good, default=None)


def run_stack(name: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {"RATE_LIMIT": "1000000 per minute"}
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    if name == "postgres+redis":
        from common import REDIS

        env["REDIS_URL"] = REDIS  # rate-limit counters in Redis, as docker-compose has them
    threads = args.threads or gunicorn_conf.threads
    with stack(name, web_workers=args.workers, **env) as (base, keys, _):
        http = session(keys[0])
        model_id, X = train_wide(http, base)
        http.close()
        print(f"{name}: gunicorn {args.workers} workers x {threads} threads", flush=True)
        phases = asyncio.run(drive(base, keys[0], model_id, X, args.seconds, args.max_rate,
                                   args.connections))
    return {"stack": name, "workers": args.workers, "threads": threads,
            "highest_rate_p99_under_25ms": highest_rate(phases), "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="per phase")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads per worker (default: service/gunicorn_conf.py)")
    parser.add_argument("--max-rate", type=float, default=4000)
    parser.add_argument("--connections", type=int, default=64, help="at most, at once")
    args = parser.parse_args()
    results = [run_stack(name, args) for name in args.stacks.split(",")]
    print(f"\n{'stack':18} {'target':12} {'rate':>5} {'achieved':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'errors':>6}")
    for r in results:
        for p in r["phases"]:
            rate = f"{p['offered']:>5.0f}" if not p["clients"] else f"c{p['clients']:<4}"
            print(f"{r['stack']:18} {p['target']:12} {rate} {p['achieved']:>8.1f} "
                  f"{p['p50_ms']:>7.2f} {p['p99_ms']:>7.2f} {p['max_ms']:>7.1f} {p['errors']:>6}")
        print(f"{r['stack']:18} highest 1-row rate with p99 < 25 ms: "
              f"{r['highest_rate_p99_under_25ms']}")
    print(json.dumps({"openloop": results}))


if __name__ == "__main__":
    main()
