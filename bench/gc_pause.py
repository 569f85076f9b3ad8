"""The garbage collector's full-collection pause in a web process, with and without
``gc.freeze()`` (what ``service/gunicorn_conf.py``'s ``post_worker_init`` does).

    .venv/bin/python bench/gc_pause.py

Builds the app as a gunicorn worker loads it (SQLite, a temporary DATA_DIR), serves a few
requests, then times ``gc.collect()`` (a full collection, as the collector's own gen-2 pass
makes under load) five times before and five times after freezing. The last line is JSON.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time

from common import pct


def main() -> None:
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-gc-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{os.environ['DATA_DIR']}/service.db")
    from service.app import create_app

    client = create_app().test_client()
    for path in ("/healthz", "/openapi.json", "/v1/models"):
        client.get(path)
    objects = len(gc.get_objects())

    def pauses() -> list[float]:
        out = []
        for _ in range(5):
            started = time.perf_counter()
            gc.collect()
            out.append(time.perf_counter() - started)
        return out

    before = pauses()
    gc.freeze()
    after = pauses()
    result = {"objects": objects, "frozen": gc.get_freeze_count(),
              "full_collection_ms": {"unfrozen_p50": pct(before, 50) * 1e3,
                                     "frozen_p50": pct(after, 50) * 1e3}}
    print(f"{objects} objects tracked; full collection p50 {pct(before, 50) * 1e3:.1f} ms, "
          f"frozen {pct(after, 50) * 1e3:.3f} ms")
    print(json.dumps({"gc_pause": result}))


if __name__ == "__main__":
    main()
