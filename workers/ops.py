"""The worker process's own operations: logging, its heartbeat row, its metrics endpoint.

- Logging: Celery leaves logging to ``service.logs`` (the same line format as the API).
- Heartbeat: the main process writes its row in ``workers`` every ``WORKER_HEARTBEAT_SECONDS``
  from a thread, busy or idle, and deletes it on a clean stop; the API's ``/metrics`` counts the
  recent rows as ``backprop_workers_alive``.
- Metrics: the pool processes write to ``PROMETHEUS_MULTIPROC_DIR`` (emptied at start); with
  ``WORKER_METRICS_PORT`` set, the main process serves their sum at ``/metrics`` (the worker's
  own endpoint: workers run on other machines than the API; ``METRICS_TOKEN`` applies).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from celery import signals
from sqlalchemy import delete, update

from service import db, logs, metrics
from service.config import Settings
from service.models import Worker, utcnow

log = logging.getLogger("workers.ops")

_state: dict[str, Any] = {"stop": threading.Event(), "server": None, "name": None}


@signals.setup_logging.connect
def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    logs.configure(level or None)


@signals.worker_init.connect
def _worker_init(sender: Any = None, **_: Any) -> None:
    path = metrics.multiprocess_dir()
    if path is None:
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: this worker's job metrics are not "
                    "exported (service/run.py and docker-compose set it)")
        return
    metrics.reset_multiprocess_dir(path, keep_pid=os.getpid())


@signals.worker_process_shutdown.connect
def _process_shutdown(pid: int | None = None, **_: Any) -> None:
    metrics.mark_process_dead(pid or os.getpid())


@signals.worker_ready.connect
def _worker_ready(sender: Any = None, **_: Any) -> None:
    settings = Settings.from_env()
    name = getattr(sender, "hostname", None) or f"celery@{socket.gethostname()}"
    _state["name"] = name
    threading.Thread(target=_heartbeat_loop, args=(name, settings, _state["stop"]),
                     daemon=True, name="worker-heartbeat").start()
    if settings.worker_metrics_port:
        _state["server"] = serve_metrics(settings)


@signals.worker_shutdown.connect
def _worker_shutdown(**_: Any) -> None:
    _state["stop"].set()
    server = _state["server"]
    if server is not None:
        server.shutdown()
    if _state["name"]:
        try:
            with db.session_scope() as s:
                s.execute(delete(Worker).where(Worker.name == _state["name"]))
        except Exception as exc:
            log.warning("could not remove this worker's heartbeat row: %s", exc)


def beat(name: str, settings: Settings) -> None:
    """Write this worker's heartbeat; drop rows of workers gone for an hour."""
    now = utcnow()
    with db.session_scope() as s:
        done = s.execute(update(Worker).where(Worker.name == name)
                         .values(heartbeat_at=now, pid=os.getpid())).rowcount
        if not done:
            s.add(Worker(name=name, pid=os.getpid(), started_at=now, heartbeat_at=now))
        s.execute(delete(Worker).where(Worker.heartbeat_at < now - timedelta(hours=1)))


def _heartbeat_loop(name: str, settings: Settings, stop: threading.Event) -> None:
    db.configure(settings.database_url)
    failing = False
    while True:
        try:
            beat(name, settings)
            if failing:
                log.info("worker heartbeat written again", extra={"worker": name})
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("worker heartbeat not written: %s", exc, extra={"worker": name})
            failing = True
        if stop.wait(settings.worker_heartbeat_seconds):
            return


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def metrics_app(settings: Settings) -> Any:
    """A WSGI app serving this worker's metrics at ``/metrics``."""
    from prometheus_client import make_wsgi_app

    inner = make_wsgi_app(metrics.registry())

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"see /metrics\n"]
        if not metrics.token_ok(settings.metrics_token, environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"/metrics needs Authorization: Bearer <METRICS_TOKEN>\n"]
        return inner(environ, start_response)

    return app


def serve_metrics(settings: Settings) -> Any:
    from prometheus_client.exposition import ThreadingWSGIServer

    server = make_server(settings.worker_metrics_host, settings.worker_metrics_port,
                         metrics_app(settings), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="worker-metrics").start()
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host,
             settings.worker_metrics_port)
    return server
