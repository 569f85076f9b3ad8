"""Where a p99 went: the same open-loop phase, round after round, beside the machine's counters.

    .venv/bin/python bench/stalls.py [--stack postgres+redis] [--rate 500] [--seconds 8]
                                     [--rounds 6] [--target predict_1|healthz]

One stack (as ``bench/openloop.py`` starts it: the rate limit raised so that it never answers
429, Redis holding its counters on PostgreSQL + Redis), one classifier, then ``--rounds`` phases
of ``--target`` at ``--rate``. For each round: p50, p99, max, the requests over 50 ms, the new
connections, and what the machine did meanwhile:
- ``steal`` and ``idle``: the share of both cores' time the hypervisor took and left idle
  (``/proc/stat``), so that a stall on an idle machine reads apart from a busy one;
- ``gap``: the longest a 1 ms sleep of the client's own event loop overslept (the client was
  late; its garbage collector is off during a phase, see ``loadgen.offer``);
- the kernel's TCP counters that moved (``/proc/net/snmp``, ``/proc/net/netstat``):
  retransmits (a loopback retransmit waits >= 200 ms), listen queue overflows, timeouts.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import orjson
from common import REDIS, pct, session, stack, train_wide
from loadgen import Pool, Target, build, offer

TCP_COUNTERS = ("RetransSegs", "TCPTimeouts", "TCPLossProbes", "TCPSynRetrans",
                "ListenOverflows", "ListenDrops", "TCPBacklogDrop", "ActiveOpens")
SLOW = 0.050


def tcp_counters() -> dict[str, int]:
    """The kernel's Tcp and TcpExt counters named in ``TCP_COUNTERS``."""
    out: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        with open(path) as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            for name, value in zip(names.split()[1:], values.split()[1:], strict=False):
                if name in TCP_COUNTERS:
                    out[name] = int(value)
    return out


def cpu_ticks() -> list[int]:
    """user, nice, system, idle, iowait, irq, softirq, steal (all cores, clock ticks)."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]


async def gaps(stop: asyncio.Event, worst: list[float]) -> None:
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        worst[0] = max(worst[0], time.perf_counter() - t - 0.001)


async def rounds(base: str, key: str, model_id: str, X: Any, args: argparse.Namespace,
                 ) -> list[dict[str, Any]]:
    host, port = base.removeprefix("http://").split(":")
    pool = Pool(host, int(port), 64)
    path = f"/v1/models/{model_id}/predict"
    ones = [orjson.dumps({"inputs": X[i:i + 1].tolist()}) for i in range(64)]
    targets = {"predict_1": Target("predict_1", build(host, int(port), "POST", path, key, ones)),
               "healthz": Target("healthz", build(host, int(port), "GET", "/healthz"))}
    target = targets[args.target]
    for t in targets.values():  # warm up every web process
        await offer(pool, t, 200, 2)
    out = []
    for r in range(args.rounds):
        tcp0, cpu0, worst = tcp_counters(), cpu_ticks(), [0.0]
        stop = asyncio.Event()
        watcher = asyncio.ensure_future(gaps(stop, worst))
        start = time.perf_counter()
        phase = await offer(pool, target, args.rate, args.seconds)
        stop.set()
        await watcher
        tcp1, cpu1 = tcp_counters(), cpu_ticks()
        ticks = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
        slow = [x for x in phase.latencies if x > SLOW]
        row = {**phase.summary(), "round": r, "over_50ms": len(slow),
               "steal_pct": 100 * ticks[7] / max(1, sum(ticks)),
               "idle_pct": 100 * ticks[3] / max(1, sum(ticks)),
               "client_gap_ms": worst[0] * 1e3,
               "tcp": {k: tcp1[k] - tcp0[k] for k in tcp1 if tcp1[k] != tcp0.get(k)}}
        del row["error_kinds"]
        out.append(row)
        print(f"round {r}: p50 {row['p50_ms']:5.2f}  p99 {row['p99_ms']:6.2f}  max "
              f"{row['max_ms']:6.1f} ms  >50ms {len(slow):3}  errors {row['errors']}  conns "
              f"+{row['new_connections']:<3} steal {row['steal_pct']:4.1f}%  idle "
              f"{row['idle_pct']:4.1f}%  client gap {row['client_gap_ms']:5.1f} ms  "
              f"tcp {row['tcp']}  ({time.perf_counter() - start:.0f} s)", flush=True)
    pool.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="postgres+redis")
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--target", default="predict_1", choices=("predict_1", "healthz"))
    args = parser.parse_args()
    env = {"RATE_LIMIT": "1000000 per minute"}
    if args.stack == "postgres+redis":
        env["REDIS_URL"] = REDIS
    with stack(args.stack, **env) as (base, keys, _):
        http = session(keys[0])
        model_id, X = train_wide(http, base)
        http.close()
        out = asyncio.run(rounds(base, keys[0], model_id, X, args))
    p99s = [r["p99_ms"] for r in out]
    print(f"p99 over rounds: median {pct(p99s, 50):.2f} ms, worst {max(p99s):.2f} ms")
    print(json.dumps({"stalls": {"stack": args.stack, "rate": args.rate, "rounds": out}}))


if __name__ == "__main__":
    main()
