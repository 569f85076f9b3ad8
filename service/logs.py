"""Logging: one line per event, readable text by default, one JSON object per line when
``LOG_FORMAT=json``. Fields given as ``extra={...}`` become keys (JSON) or ``key=value`` pairs
(text); the request id of the request being served is added to every line logged during it.

Used by gunicorn (``logconfig_dict`` in ``service/gunicorn_conf.py``), the Celery worker
(``workers.observe``) and ``service.run``.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import os
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                        default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime",
                                                                       "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    rid = request_id.get()
    if rid is not None and "request_id" not in out:
        out["request_id"] = rid
    return out


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


class JSONFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields, "exception"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {"time": _time(record), "level": record.levelname,
                                "logger": record.name, "message": record.getMessage(),
                                "pid": record.process, **_fields(record)}
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` (a traceback follows on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={_text(v)}" for k, v in _fields(record).items())
        line = f"{_time(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {pairs}" if pairs else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _text(value: Any) -> str:
    s = str(value)
    return orjson.dumps(s).decode() if (not s or any(c in s for c in ' "=\n')) else s


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that takes no lock: each thread formats its own record and writes the
    line to the stream's file descriptor in one ``os.write`` (the kernel keeps a write whole).

    ``logging.StreamHandler`` formats and writes under one lock per handler. A thread that
    blocked in the write let go of the GIL but not of that lock, so every thread of the process
    that logged queued behind it, and the waiters then took the GIL back one after the other:
    10 to 13 request threads of a web process stuck in ``Handler.acquire`` for 50-100 ms at
    500 predictions/s (a lock convoy; the one-line-per-request log is on that path). A stream
    without a descriptor (a test's ``StringIO``) is written as ``StreamHandler`` does it."""

    def handle(self, record: logging.LogRecord) -> bool:
        accepted = self.filter(record)
        if isinstance(accepted, logging.LogRecord):  # Python >= 3.12: a filter may replace it
            record = accepted
        if accepted:
            self.emit(record)
        return bool(accepted)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
            fd = None
        if not isinstance(fd, int):  # (Celery's LoggingProxy answers None)
            with self.lock:  # type: ignore[union-attr]
                super().emit(record)
            return
        try:
            data = (self.format(record) + self.terminator).encode("utf-8", "backslashreplace")
            while data:
                data = data[os.write(fd, data):]
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def log_format() -> str:
    fmt = (os.environ.get("LOG_FORMAT") or "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"LOG_FORMAT must be text or json, got {fmt!r}")
    return fmt


def dict_config(level: str | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for one stderr handler on the root logger. gunicorn's
    own loggers write through it too (its access log is off: the app logs each request)."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    formatter = JSONFormatter if log_format() == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": formatter}},
        "handlers": {"stderr": {"class": "service.logs.LineHandler", "formatter": "service",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            # Celery logs "Task ... succeeded" for every task, also for a job that failed:
            # the worker logs each job's real outcome instead (workers.observe).
            "celery.app.trace": {"level": "WARNING"},
        },
    }


def configure(level: str | None = None) -> None:
    logging.config.dictConfig(dict_config(level))
