"""Peak memory of a web worker parsing a large CSV upload (``POST /v1/datasets``, text/csv).

Starts the API (one gunicorn process, SQLite + the filesystem broker), uploads a ~50 MB CSV
(1,000,000 rows: 5 numeric inputs and a text label) and prints the worker process's peak RSS
(``VmHWM`` in ``/proc/<pid>/status``) before and after the upload, and the body size.

    .venv/bin/python bench/csv_memory.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import auth, db
from service.run import Processes
from service.setup import migrate


def _csv(rows: int) -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 5))
    labels = np.array(["setosa", "versicolor", "virginica"])[rng.integers(0, 3, rows)]
    lines = ["a,b,c,d,e,species"]
    lines += [f"{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{r[3]:.6f},{r[4]:.6f},{lab}"
              for r, lab in zip(X, labels, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    body = _csv(args.rows)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-csv-"))
    url = f"sqlite:///{data_dir / 'service.db'}"
    migrate(url)
    db.configure(url)
    with db.session_scope() as s:
        key = auth.create_key(s, "bench")
    env = {**os.environ, "DATA_DIR": str(data_dir), "DATABASE_URL": url,
           "BROKER_URL": "filesystem://", "RATE_LIMIT": ""}
    port = 18000 + os.getpid() % 2000
    procs = Processes(env, port, web_workers=1, host="127.0.0.1", log_dir=data_dir).start(
        only=("api",))
    try:
        base = f"http://127.0.0.1:{port}"
        requests.get(base + "/v1/datasets", headers={"Authorization": f"Bearer {key}"},
                     timeout=30).raise_for_status()  # warm: the app is imported and serving
        pid = _worker_pid(procs.procs["api"].pid)
        before = _peak_kib(pid)
        t0 = time.perf_counter()
        r = requests.post(base + "/v1/datasets?name=big&target=species", data=body, timeout=600,
                          headers={"Authorization": f"Bearer {key}",
                                   "Content-Type": "text/csv"})
        seconds = time.perf_counter() - t0
        r.raise_for_status()
        after = _peak_kib(pid)
        print(f"CSV body {len(body) / 2**20:.1f} MiB, {args.rows} rows: web worker peak RSS "
              f"{before / 1024:.0f} MiB before, {after / 1024:.0f} MiB after "
              f"(+{(after - before) / 1024:.0f} MiB = {(after - before) * 1024 / len(body):.1f}x "
              f"the body); upload {seconds:.1f} s")
    finally:
        procs.stop()


if __name__ == "__main__":
    main()
