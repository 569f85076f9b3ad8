"""What a request costs when the process was idle just before, against back to back.

    .venv/bin/python bench/idle_cost.py [--requests 600] [--gap-ms 10]

In one process (the app through Flask's test client: no sockets, no gunicorn; SQLite and the
SQLite rate-limit file), the CPU time (``time.thread_time``) of ``GET /healthz`` and of a 1-row
predict on the 784-256-128-10 classifier of ``bench/openloop.py``: first back to back, then with
a sleep of ``--gap-ms`` before each request, as a web process sees requests at a few hundred
per second shared by two processes. Alternated in rounds, so both see the same machine. On a
VM a vCPU that idles gives its core (and caches) away; the ratio says how much that costs here.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from common import pct, wide_data, wide_job

from service import auth, db
from service.app import create_app
from service.setup import migrate


def build() -> tuple[Any, dict[str, str], str, list[bytes]]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    url = f"sqlite:///{data_dir / 'service.db'}"
    migrate(url)
    app = create_app({"data_dir": data_dir, "database_url": url,
                      "broker_url": "filesystem://", "rate_limit": "1000000 per minute"})
    client = app.test_client()
    with db.session_scope() as s:
        key = auth.create_key(s, f"bench-{secrets.token_hex(3)}")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    X, labels = wide_data(32)
    ds = client.post("/v1/datasets", headers=headers,
                     json={"name": "wide", "inputs": X.tolist(), "labels": labels}).get_json()
    job = client.post("/v1/jobs", headers=headers, json=wide_job(ds["id"])).get_json()
    from workers.runner import run_job

    assert run_job(job["id"], app.config["SETTINGS"]) == "succeeded"
    model_id = client.get(f"/v1/jobs/{job['id']}", headers=headers).get_json()["model_id"]
    bodies = [orjson.dumps({"inputs": X[i:i + 1].tolist()}) for i in range(32)]
    return client, headers, f"/v1/models/{model_id}/predict", bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="per target and mode")
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args()
    client, headers, path, bodies = build()
    targets = {"healthz": lambda i: client.get("/healthz"),
               "predict_1": lambda i: client.post(path, data=bodies[i % 32], headers=headers)}
    for call in targets.values():  # warm up
        for i in range(100):
            assert call(i).status_code == 200
    cpu: dict[str, list[float]] = {f"{t}/{m}": [] for t in targets for m in ("busy", "idle")}
    rounds = 6
    for _ in range(rounds):
        for name, call in targets.items():
            for mode in ("busy", "idle"):
                for i in range(args.requests // rounds):
                    if mode == "idle":
                        time.sleep(args.gap_ms / 1e3)
                    started = time.thread_time()
                    call(i)
                    cpu[f"{name}/{mode}"].append(time.thread_time() - started)
    out: dict[str, Any] = {"gap_ms": args.gap_ms, "requests": args.requests}
    for name in targets:
        busy, idle = (float(np.mean(cpu[f"{name}/{m}"])) * 1e3 for m in ("busy", "idle"))
        out[name] = {"busy_ms": busy, "idle_ms": idle, "idle_over_busy": idle / busy,
                     "idle_p90_ms": pct(cpu[f"{name}/idle"], 90) * 1e3}
        print(f"{name:10} CPU per request: back to back {busy:.3f} ms, after {args.gap_ms:g} ms "
              f"idle {idle:.3f} ms ({idle / busy:.2f}x)")
    print(json.dumps({"idle_cost": out}))


if __name__ == "__main__":
    main()
