"""Settings from environment variables, with defaults for one machine and nothing installed.

``DATABASE_URL`` defaults to a SQLite file and ``BROKER_URL`` to kombu's filesystem transport,
both under ``DATA_DIR`` (``./var``); point them at PostgreSQL and Redis in production.
"""

from __future__ import annotations

import os
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
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        data_dir = Path(os.environ.get("DATA_DIR") or "var")
        s = cls(data_dir=data_dir)
        s.database_url = os.environ.get("DATABASE_URL") or \
            f"sqlite:///{(data_dir / 'service.db').resolve()}"
        s.broker_url = os.environ.get("BROKER_URL") or "filesystem://"
        s.redis_url = os.environ.get("REDIS_URL", "")
        s.bootstrap_api_key = os.environ.get("BOOTSTRAP_API_KEY", "")
        s.environment = os.environ.get("ENVIRONMENT", "development")
        s.rate_limit = os.environ.get("RATE_LIMIT", s.rate_limit)
        for f in fields(cls):
            if f.name in ("data_dir", "database_url", "broker_url", "redis_url",
                          "bootstrap_api_key", "environment", "limits", "rate_limit"):
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
        if s.task_time_limit <= s.task_soft_time_limit:
            raise ValueError("TASK_TIME_LIMIT must exceed TASK_SOFT_TIME_LIMIT")
        return s

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()
