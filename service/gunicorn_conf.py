"""gunicorn settings shared by ``make run``, the end-to-end tests, the Dockerfile and
docker-compose (``gunicorn -c python:service.gunicorn_conf``). ``--bind`` and ``--workers`` are
given on the command line; everything else is here.

Worker model: ``gthread``. Each web process serves ``GUNICORN_THREADS`` requests at once, so a
slow client or a long-lived event stream holds one thread, not a whole process; predictions are
short NumPy calls that release the GIL in BLAS.
"""

from __future__ import annotations

import os

worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
accesslog = "-"
graceful_timeout = 10
