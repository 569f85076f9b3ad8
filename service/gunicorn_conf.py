"""gunicorn settings shared by ``make run``, the end-to-end tests, the Dockerfile and
docker-compose (``gunicorn -c python:service.gunicorn_conf``). ``--bind`` and ``--workers`` are
given on the command line; everything else is here.

Worker model: ``gthread``. Each web process serves ``GUNICORN_THREADS`` requests at once, so a
slow client or a long-lived event stream holds one thread, not a whole process; predictions are
short NumPy calls that release the GIL in BLAS. Event streams may hold at most half of a
process's threads (``STREAMS_PER_PROCESS``, default ``GUNICORN_THREADS // 2``), so ordinary
requests always find a free thread; idle keep-alive connections wait in gthread's poller.

Numbers: ``--workers`` = cores (``WEB_CONCURRENCY``; 2 here). A process runs Python on one core
at a time (the GIL), so the processes are what use the cores; a cached 1-row predict costs
about 1 ms of CPU more than ``GET /healthz`` (``bench/openloop.py``, measured on a busy machine),
so 500/s needs about half of the 2 cores. Threads do not add CPU: they are for requests that
wait (an event stream holds a thread for as long as it is open, a request on the database, a
slow client), so each process has 16, of which 8 may be event streams. More threads cost nothing
idle (the pool grows on demand); in a burst they share the GIL instead of queueing.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from service.config import gunicorn_threads
from service.logs import dict_config

# -- threads and processes ---------------------------------------------------------------------
threads = gunicorn_threads()

# -- slow and hostile clients (service/gunicorn_worker.py) -------------------------------------
# gthread, with a read deadline per request (CLIENT_TIMEOUT_SECONDS, default 20, extended by
# one second per CLIENT_MIN_BYTES_PER_SECOND bytes received, default 500) so that clients
# dribbling their headers or body cannot hold every thread; gunicorn's own error answers (400,
# 408, 414, 431) are problem+json.
worker_class = "service.gunicorn_worker.GuardedThreadWorker"
timeout = 30  # a process whose main loop stops for this long is restarted
keepalive = 5  # idle kept-alive connections wait in the poller (no thread), then close
limit_request_line = 8190  # longer request lines (URLs): 414
limit_request_fields = 100  # more header fields: 431
limit_request_field_size = 8190  # a longer header field: 431

# The app logs one line per request (service/observe.py): gunicorn's access log would repeat it,
# and its logger would build each request's access-log fields even when they go nowhere.
accesslog = None
logger_class = "service.gunicorn_worker.Logger"
graceful_timeout = 10
# A worker tells the arbiter it is alive by touching a file after every batch of socket events:
# on a disk filesystem that is a journaled inode write each time (8 % of a loaded worker's
# samples, py-spy); on tmpfs it costs nothing. gunicorn's own advice for containers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
    else None


# -- ops: files under DATA_DIR, structured logs, Prometheus multiprocess mode --------------------
def _data_dir() -> Path:
    from service.config import Settings

    return Settings.from_env().data_dir.resolve()


logconfig_dict = dict_config()  # the same line format as the app and the worker
# Every gunicorn worker writes its metrics to files here; /metrics sums them.
_metrics_dir = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR",
                                          str(_data_dir() / "metrics" / "api")))
# gunicorn >= 25 opens a control socket (for `gunicornc`) in $HOME unless told otherwise: keep it
# under DATA_DIR; a Unix socket path has at most 107 bytes, so a deeper DATA_DIR turns it off.
control_socket = str(_data_dir() / "gunicorn.ctl")
control_socket_disable = len(control_socket.encode()) > 100


def on_starting(server: Any) -> None:
    """Files of an earlier run must not be summed into this one (prometheus-client's rule)."""
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    _metrics_dir.mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    """A web worker exited: its live gauges go, its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    """The app is loaded: move its objects out of the garbage collector's sight, and on
    SIGTERM end this worker's event streams at once (clients reconnect elsewhere) instead of
    holding the shutdown for ``graceful_timeout``.

    ``gc.freeze()``: the loaded app is ~115,000 objects (Flask, SQLAlchemy, pydantic, the
    OpenAPI models) that live as long as the process; every full collection walked them all,
    a 80-90 ms pause of every thread in the process, a few times a minute under load (the p99
    of every route). Frozen, a full collection walks only what requests left behind."""
    gc.collect()
    gc.freeze()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        from service import wake

        wake.shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
