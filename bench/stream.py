"""Event-stream latency: an epoch's commit to its arrival at a client, over real HTTP.

    .venv/bin/python bench/stream.py [--epochs 200] [--interval 0.05] [--stacks ...]

For each stack (SQLite + filesystem broker, where a stream polls the database every 0.2 s;
PostgreSQL + Redis, where the runner's ``wake.notify`` wakes the stream by pub/sub) it starts
the API with the launcher ``make run`` uses, makes a running job, and then plays the runner's
part in this process: insert one history row, commit, note the time, ``wake.notify`` — every
``--interval`` s. A client thread reads ``GET /v1/jobs/{id}/events`` and notes when each
``event: epoch`` arrives. Both clocks are this process's. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from common import REDIS, STACKS, pct, session, stack

from service import db, wake
from service.models import Dataset, EpochRecord, Job, new_id, utcnow


def make_job(key_tenant: str) -> str:
    with db.session_scope() as s:
        ds = s.query(Dataset).first()
        job = Job(id=new_id("job"), tenant_id=key_tenant, dataset_id=ds.id if ds else "ds_x",
                  status="running", spec={}, epochs=100_000, attempts=1,
                  enqueued_at=utcnow(), heartbeat_at=utcnow(), started_at=utcnow())
        s.add(job)
    return job.id


def run(name: str, epochs: int, interval: float) -> dict[str, Any]:
    with stack(name) as (base, keys, _log):
        http = session(keys[0])
        from service.models import ApiKey

        with db.session_scope() as s:
            tenant = s.query(ApiKey).first().tenant_id
        job_id = make_job(tenant)
        wake.configure(REDIS if name == "postgres+redis" else "")
        committed: dict[int, float] = {}
        arrived: dict[int, float] = {}
        ready = threading.Event()

        def reader() -> None:
            with http.get(f"{base}/v1/jobs/{job_id}/events", stream=True, timeout=60) as r:
                ident = None
                for line in r.iter_lines(decode_unicode=True):
                    ready.set()
                    if line.startswith("id: "):
                        ident = int(line[4:])
                    elif line == "event: epoch" and ident is not None:
                        arrived[ident] = time.time()
                        if ident == epochs:
                            return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        ready.wait(30)
        time.sleep(1.0)  # the stream's wake-up subscription is in place
        for epoch in range(1, epochs + 1):
            with db.session_scope() as s:
                s.add(EpochRecord(job_id=job_id, epoch=epoch, loss=1.0 / epoch,
                                  learning_rate=0.1, seconds=interval))
            committed[epoch] = time.time()
            wake.notify(job_id)
            time.sleep(interval)
        t.join(30)
        lat = [arrived[e] - committed[e] for e in committed if e in arrived]
        return {"stack": name, "epochs": epochs, "received": len(lat),
                "p50_ms": round(1000 * pct(lat, 50), 1), "p95_ms": round(1000 * pct(lat, 95), 1),
                "max_ms": round(1000 * max(lat), 1) if lat else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--stacks", nargs="+", default=list(STACKS), choices=STACKS)
    args = parser.parse_args()
    results = []
    for name in args.stacks:
        r = run(name, args.epochs, args.interval)
        print(f"{name:18} {r['received']}/{r['epochs']} epochs  commit -> client  "
              f"p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  max {r['max_ms']} ms", flush=True)
        results.append(r)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
