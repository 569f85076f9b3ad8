"""Operational endpoints: liveness, readiness (no auth), Prometheus metrics (a bearer token
when ``METRICS_TOKEN`` is set: the counts cover every tenant)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from flask import Response, current_app, request
from flask_openapi3 import APIBlueprint, Tag
from kombu.exceptions import ChannelError
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel
from sqlalchemy import func, select, text

from .. import db, ratelimit
from .. import metrics as service_metrics
from ..config import Settings
from ..errors import APIError
from ..models import Dataset, Job, TrainedModel, Worker, utcnow
from ..queue import QUEUE
from ..schemas import Problem

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

bp = APIBlueprint("ops", __name__, abp_tags=[Tag(name="operations")])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, str]


def check_database() -> str:
    try:
        db.request_session().execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        db.request_session().rollback()
        return f"unreachable: {type(exc).__name__}"


def check_broker() -> str:
    celery = current_app.extensions["celery"]
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


@bp.get("/healthz", operation_id="get_health", summary="Liveness", responses={200: Health})
def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz", operation_id="get_readiness", summary="Readiness of the database and broker",
        responses={200: Ready, 503: Ready})
def readyz() -> Any:
    """Database and broker reachable (`200`), else `503` naming the part that is down.
    `rate_limit_store` is named too, but does not make the service unready: without it the
    API answers, unlimited."""
    checks = {"database": check_database(), "broker": check_broker()}
    ok = all(v == "ok" for v in checks.values())
    checks.update(ratelimit.readiness())
    return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503


def queue_length() -> int | None:
    """Messages waiting in the training queue; ``None`` when the broker is unreachable."""
    celery = current_app.extensions["celery"]
    try:
        with celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            try:
                return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True)
                           .message_count)
            except ChannelError:  # Redis: an empty queue has no key
                return 0
    except Exception:
        return None


class _ServiceCollector:
    """Gauges of the whole service, read from the database and the broker at scrape time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        s, now = db.request_session(), utcnow()
        counts = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        jobs = GaugeMetricFamily("backprop_jobs", "Training jobs by status", labels=["status"])
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        oldest = s.scalar(select(func.min(Job.created_at)).where(Job.status == "queued"))
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=now.tzinfo)
        yield GaugeMetricFamily("backprop_oldest_queued_job_age_seconds",
                                "Age of the oldest job still waiting to start (0: none)",
                                value=(now - oldest).total_seconds() if oldest else 0.0)
        fresh = now - timedelta(seconds=3 * self.settings.worker_heartbeat_seconds)
        yield GaugeMetricFamily("backprop_workers_alive",
                                "Training workers whose heartbeat is recent",
                                value=s.scalar(select(func.count()).select_from(Worker)
                                               .where(Worker.heartbeat_at >= fresh)))
        length = queue_length()
        yield GaugeMetricFamily("backprop_broker_up", "1 when the broker answered this scrape",
                                value=0 if length is None else 1)
        if length is not None:
            yield GaugeMetricFamily("backprop_queue_length",
                                    "Messages waiting in the broker's training queue",
                                    value=length)
        yield GaugeMetricFamily("backprop_datasets", "Datasets stored",
                                value=s.scalar(select(func.count()).select_from(Dataset)))
        yield GaugeMetricFamily("backprop_models", "Trained models stored",
                                value=s.scalar(select(func.count()).select_from(TrainedModel)))


def check_metrics_token(token: str, header: str | None) -> None:
    """``Authorization: Bearer <METRICS_TOKEN>`` when a token is configured, else 401."""
    if not service_metrics.token_ok(token, header):
        raise APIError(401, "Unauthorized", "/metrics needs Authorization: Bearer "
                       "<METRICS_TOKEN>", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


@bp.get("/metrics", operation_id="get_metrics", summary="Prometheus metrics",
        responses={200: {"description": "Prometheus text format",
                         "content": {"text/plain": {"schema": {"type": "string"}}}},
                   401: Problem})
def metrics() -> Any:
    """Prometheus metrics: requests, predictions, jobs, workers, the queue (see the README).
    With `METRICS_TOKEN` set, it needs `Authorization: Bearer <METRICS_TOKEN>` (`401` else)."""
    settings: Settings = current_app.config["SETTINGS"]
    check_metrics_token(settings.metrics_token, request.headers.get("Authorization"))
    registry = service_metrics.registry()
    registry.register(_ServiceCollector(settings))
    # generate_latest writes the classic text format, 0.0.4 (prometheus_client's own default
    # answer); CONTENT_TYPE_LATEST may name a newer version that also needs an escaping scheme.
    return Response(generate_latest(registry), content_type=PROMETHEUS_TEXT)
