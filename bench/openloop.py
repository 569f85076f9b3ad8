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
import json
from typing import Any

import numpy as np
import orjson
from common import STACKS, session, stack, train_wide
from loadgen import Phase, Pool, Target, build, closed, offer

from service import gunicorn_conf

P99_BOUND = 0.025
CLOSED_CLIENTS = 8


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
