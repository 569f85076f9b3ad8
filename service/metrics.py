"""Prometheus metric definitions, shared by the API and the workers.

Processes that set ``PROMETHEUS_MULTIPROC_DIR`` before importing ``prometheus_client`` (every
gunicorn worker: ``service/gunicorn_conf.py``; the Celery worker: ``service/run.py`` and
docker-compose) write their samples to files there, and a scrape sums the files of every process
(``prometheus_client.multiprocess``); counters of a dead process stay counted. Without it (tests,
a Python shell) they live in the default registry of the process.

Gauges that describe the whole service (jobs by status, the oldest queued job, live workers, the
broker's queue) are read from the database and the broker at scrape time (``service.api.ops``),
so every API process answers the same, whichever process is asked.
"""

from __future__ import annotations

import hmac
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.metrics_core import Metric

PREFIX = "backprop"

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the client library writes there from now on
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

# Seconds: requests and predictions are milliseconds; jobs are seconds to hours.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0)
JOB_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
               2 * 3600.0, 4 * 3600.0, 8 * 3600.0, 24 * 3600.0)

# -- the API --------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(f"{PREFIX}_http_requests", "HTTP requests answered",
                        ["method", "route", "status"])
HTTP_DURATION = Histogram(f"{PREFIX}_http_request_duration_seconds",
                          "Time to answer an HTTP request (to the first byte of a stream)",
                          ["method", "route", "status"], buckets=FAST_BUCKETS)
PREDICT_DURATION = Histogram(f"{PREFIX}_predict_duration_seconds",
                             "Time to compute one predict call (model in memory)",
                             buckets=FAST_BUCKETS)
PREDICT_ROWS = Counter(f"{PREFIX}_predict_rows", "Rows predicted")
MODEL_CACHE = Counter(f"{PREFIX}_model_cache_lookups",
                      "Model cache lookups of the predict path, by result", ["result"])

# -- jobs (mostly the worker; a queued job cancelled through the API is counted by the API) -------
JOBS_FINISHED = Counter(f"{PREFIX}_jobs_finished", "Jobs that reached a final status",
                        ["status"])
JOB_DURATION = Histogram(f"{PREFIX}_job_duration_seconds",
                         "From the first start of a job to its end, by final status",
                         ["status"], buckets=JOB_BUCKETS)
JOB_QUEUE_WAIT = Histogram(f"{PREFIX}_job_queue_wait_seconds",
                           "From a job's acceptance to the start of its first attempt",
                           buckets=JOB_BUCKETS)
EPOCHS_TRAINED = Counter(f"{PREFIX}_epochs_trained", "Epochs trained by workers")
JOB_RETRIES = Counter(f"{PREFIX}_job_attempts_beyond_first",
                      "Attempts after the first of a job (broker redeliveries, reaper re-sends)")


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method, route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


def observe_prediction(seconds: float, rows: int) -> None:
    PREDICT_DURATION.observe(seconds)
    PREDICT_ROWS.inc(rows)


def model_cache_lookup(hit: bool) -> None:
    MODEL_CACHE.labels("hit" if hit else "miss").inc()


def job_finished(status: str, duration_seconds: float | None = None) -> None:
    JOBS_FINISHED.labels(status).inc()
    if duration_seconds is not None:
        JOB_DURATION.labels(status).observe(max(0.0, duration_seconds))


def token_ok(token: str, header: str | None) -> bool:
    """Whether ``header`` is ``Bearer <token>`` (always, when no token is configured)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8",
                                                              "surrogatepass"), token.encode())


# -- multiprocess mode ----------------------------------------------------------------------------
def multiprocess_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def reset_multiprocess_dir(path: Path, keep_pid: int | None = None) -> None:
    """Empty ``path`` before the processes that write to it start (the client library's rule:
    files of an earlier run must not be summed into this one). ``keep_pid``: the files of this
    process, which may already hold its metrics."""
    if path.exists() and keep_pid is None:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if keep_pid is not None:
        for f in path.glob("*.db"):
            if not f.stem.endswith(f"_{keep_pid}"):
                f.unlink(missing_ok=True)


def mark_process_dead(pid: int) -> None:
    """A process that wrote metrics has exited (gunicorn's ``child_exit`` hook)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)


class _Forward:
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


def registry() -> CollectorRegistry:
    """A fresh registry with the samples of every process (or of this one, without the mode);
    a scrape adds its own collectors to it."""
    reg = CollectorRegistry()
    if multiprocess_dir() is None:
        reg.register(_Forward(REGISTRY))
    else:
        multiprocess.MultiProcessCollector(reg)
    return reg
