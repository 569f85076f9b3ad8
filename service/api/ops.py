"""Operational endpoints (no auth): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel
from sqlalchemy import func, select, text

from .. import db, ratelimit
from ..models import Dataset, Job, TrainedModel

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

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


class _DatabaseCollector:
    def collect(self) -> Any:
        s = db.request_session()
        jobs = GaugeMetricFamily("backprop_jobs", "Training jobs by status", labels=["status"])
        for status, count in s.execute(select(Job.status, func.count()).group_by(Job.status)):
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily("backprop_datasets", "Datasets stored",
                                value=s.scalar(select(func.count()).select_from(Dataset)))
        yield GaugeMetricFamily("backprop_models", "Trained models stored",
                                value=s.scalar(select(func.count()).select_from(TrainedModel)))


@bp.get("/metrics", operation_id="get_metrics", summary="Prometheus metrics",
        responses={200: {"description": "Prometheus text format",
                         "content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics() -> Any:
    """Prometheus metrics: jobs by status, datasets, models."""
    registry = CollectorRegistry()
    registry.register(_DatabaseCollector())
    # generate_latest writes the classic text format, 0.0.4 (prometheus_client's own default
    # answer); CONTENT_TYPE_LATEST may name a newer version that also needs an escaping scheme.
    return Response(generate_latest(registry), content_type=PROMETHEUS_TEXT)
