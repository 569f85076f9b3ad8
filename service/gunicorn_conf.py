"""gunicorn settings shared by ``make run``, the end-to-end tests, the Dockerfile and
docker-compose (``gunicorn -c python:service.gunicorn_conf``). ``--bind`` and ``--workers`` are
given on the command line; everything else is here.

Worker model: ``gthread``. Each web process serves ``GUNICORN_THREADS`` requests at once, so a
slow client or a long-lived event stream holds one thread, not a whole process; predictions are
short NumPy calls that release the GIL in BLAS. Event streams may hold at most half of a
process's threads (``STREAMS_PER_PROCESS``, default ``GUNICORN_THREADS // 2``), so ordinary
requests always find a free thread; idle keep-alive connections wait in gthread's poller,
not on a thread.
"""

from __future__ import annotations

import os
import signal
from typing import Any

# -- threads and processes ---------------------------------------------------------------------
threads = int(os.environ.get("GUNICORN_THREADS") or 16)

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

accesslog = "-"
graceful_timeout = 10


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end this worker's event streams at once (clients reconnect elsewhere)
    instead of holding the shutdown for ``graceful_timeout``."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        from service import wake

        wake.shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
