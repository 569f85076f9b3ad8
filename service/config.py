"""Settings from environment variables, with defaults for one machine and nothing installed.

``DATABASE_URL`` defaults to a SQLite file and ``BROKER_URL`` to kombu's filesystem transport,
both under ``DATA_DIR`` (``./var``); point them at PostgreSQL and Redis in production.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _env(name: str, default: Any, cast: type) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if cast is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    try:
        return cast(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid {cast.__name__}") \
            from None


INSECURE_SECRETS = frozenset({"dev", "development", "secret", "change-me", "changeme",
                              "please-change-me", "insecure"})


def gunicorn_threads() -> int:
    """Threads per gunicorn web process (``GUNICORN_THREADS``, default 16)."""
    return _env("GUNICORN_THREADS", 16, int)


@dataclass
class Limits:
    """Bounds on everything that user input can make the service allocate."""

    max_request_bytes: int = 64 * 1024 * 1024
    max_rows: int = 1_000_000
    max_features: int = 4096
    max_outputs: int = 1024
    max_layers: int = 32
    max_units: int = 8192
    max_parameters: int = 20_000_000
    max_epochs: int = 100_000
    max_epoch_rows: int = 2_000_000_000  # epochs x training rows
    max_predict_rows: int = 10_000
    max_diagnostic_rows: int = 200_000  # per job: recorded epochs x layers
    max_trace_rows: int = 64
    max_trace_parameters: int = 200_000  # a trace returns every weight and gradient
    max_trace_check_parameters: int = 20_000  # two forward passes per parameter
    max_evaluate_rows: int = 100_000
    max_name_chars: int = 200
    max_training_memory_bytes: int = 4 * 1024**3  # a job's estimated peak; 0 disables


@dataclass
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    redis_url: str = ""  # rate limits; empty means in-process memory
    bootstrap_api_key: str = ""
    environment: str = "development"
    model_cache_size: int = 32
    # How long a web process trusts what it cached about an API key or a model's owner and
    # shape: a revoked key or a deleted model stops working in every process within this time.
    cache_ttl_seconds: float = 1.0
    api_blas_threads: int = 1  # per API process: web workers x threads <= cores
    rate_limit: str = "1200 per minute"  # per API key on /v1; empty disables
    checkpoint_every_epochs: int = 0  # 0: by time only
    checkpoint_every_seconds: float = 30.0
    flush_every_seconds: float = 0.5  # history, progress, heartbeat and cancel flag
    heartbeat_timeout_seconds: float = 120.0
    dataset_cache_bytes: int = 512 * 1024 * 1024  # per worker process
    max_attempts: int = 3
    task_soft_time_limit: float = 6 * 3600.0
    task_time_limit: float = 6 * 3600.0 + 120.0
    metrics_token: str = ""  # when set, /metrics (and a worker's endpoint) need it as a bearer
    worker_heartbeat_seconds: float = 10.0  # a worker is alive while its beat is < 3x this old
    worker_metrics_port: int = 0  # a worker's own /metrics endpoint; 0: none
    worker_metrics_host: str = "127.0.0.1"
    log_format: str = "text"  # or "json": one JSON object per line
    log_level: str = "INFO"
    secret_key: str = ""  # signs the dashboard's session cookie; see ``secret()``
    session_cookie_secure: bool = False  # send the cookie over HTTPS only (behind TLS: true)
    stream_max_seconds: float = 300.0  # the server closes an event stream after this; it resumes
    stream_keepalive_seconds: float = 15.0  # a comment line this often keeps proxies patient
    streams_per_key: int = 4  # open event streams per API key (429 past it)
    streams_per_process: int = 0  # 0: half of GUNICORN_THREADS, so requests keep threads
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        data_dir = Path(os.environ.get("DATA_DIR") or "var")
        s = cls(data_dir=data_dir)
        s.database_url = os.environ.get("DATABASE_URL") or \
            f"sqlite:///{(data_dir / 'service.db').resolve()}"
        s.broker_url = os.environ.get("BROKER_URL") or "filesystem://localhost/"
        if s.broker_url.rstrip("/") == "filesystem:":  # no host: kombu warns at each connection
            s.broker_url = "filesystem://localhost/"
        s.redis_url = os.environ.get("REDIS_URL", "")
        s.bootstrap_api_key = os.environ.get("BOOTSTRAP_API_KEY", "")
        s.environment = os.environ.get("ENVIRONMENT", "development")
        s.rate_limit = os.environ.get("RATE_LIMIT", s.rate_limit)
        s.secret_key = os.environ.get("SECRET_KEY", "")
        for f in fields(cls):
            if f.name in ("data_dir", "database_url", "broker_url", "redis_url",
                          "bootstrap_api_key", "environment", "limits", "rate_limit",
                          "secret_key"):
                continue
            setattr(s, f.name, _env(f.name.upper(), getattr(s, f.name), type(getattr(s, f.name))))
        for f in fields(Limits):
            name = f.name.upper()
            setattr(s.limits, f.name, _env(name, getattr(s.limits, f.name), int))
        for key, value in overrides.items():
            if hasattr(s.limits, key):
                setattr(s.limits, key, value)
            elif hasattr(s, key):
                setattr(s, key, value)
            else:
                raise TypeError(f"unknown setting {key!r}")
        if s.streams_per_process <= 0:
            s.streams_per_process = max(1, gunicorn_threads() // 2)
        if s.task_time_limit <= s.task_soft_time_limit:
            raise ValueError("TASK_TIME_LIMIT must exceed TASK_SOFT_TIME_LIMIT")
        return s

    def secret(self) -> str:
        """The session-signing secret: ``SECRET_KEY``; in development without one, a random
        secret kept in ``DATA_DIR/secret-key`` (shared by the web processes). Outside
        development a missing or well-known secret refuses to start."""
        if self.secret_key and self.secret_key not in INSECURE_SECRETS and \
                len(self.secret_key) >= 16:
            return self.secret_key
        if self.environment != "development":
            raise RuntimeError("SECRET_KEY must be set to a random value of 16 or more "
                               "characters outside development (ENVIRONMENT="
                               f"{self.environment}); e.g. python -c 'import secrets; "
                               "print(secrets.token_urlsafe(32))'")
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret-key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for _ in range(50):  # another process is writing it
                value = path.read_text().strip()
                if value:
                    return value
                time.sleep(0.05)
            raise RuntimeError(f"{path} is empty; delete it") from None
        value = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()
