"""SQLAlchemy models shared by the API and the workers. The schema changes only by migration."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Opaque ids that sort by creation time: ``prefix_`` + 12 hex of ms + 16 random hex."""
    return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC; read back as aware UTC datetimes on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Blob(Base):
    """An ``.npz`` archive (dataset arrays, model weights, a checkpoint) with its sha256."""

    __tablename__ = "blobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    rows: Mapped[int] = mapped_column(Integer)
    features: Mapped[int] = mapped_column(Integer)
    outputs: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(20))
    classes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    feature_names: Mapped[list[Any]] = mapped_column(JSON)
    target_names: Mapped[list[Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (Index("ix_datasets_tenant_id_id", "tenant_id", "id"),)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    dataset_id: Mapped[str] = mapped_column(String(40))  # kept after the dataset is deleted
    status: Mapped[str] = mapped_column(String(20), default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer)
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # host:pid
    checkpoint_blob_id: Mapped[str | None] = mapped_column(ForeignKey("blobs.id"),
                                                           nullable=True)
    checkpoint_epoch: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A sweep's trial: its sweep, number (0, 1, ...), the parameters it tried; pruned by the
    # sweep's pruner (then cancelled).
    sweep_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trial_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    pruned: Mapped[bool] = mapped_column(Boolean, default=False)
    # ``continue_from``: the model this job trains further (its lineage)
    parent_model_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    gradient_check: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    warnings: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    __table_args__ = (
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_dataset_id", "dataset_id"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
    )


class Sweep(Base):
    """A hyperparameter search: trials are ordinary jobs with ``sweep_id`` set. Every decision
    (new trials, pruning, the end) is one update fenced by ``revision``."""

    __tablename__ = "sweeps"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default="running")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    trials_created: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    __table_args__ = (Index("ix_sweeps_tenant_id_id", "tenant_id", "id"),
                      Index("ix_sweeps_status", "status"))


class EpochRecord(Base):
    """One row of a job's training history."""

    __tablename__ = "history"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    val_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    learning_rate: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)


class DiagnosticRecord(Base):
    """One layer's diagnostics at the end of one epoch (``training.diagnostics``)."""

    __tablename__ = "diagnostics"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"),
                                        primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    layer: Mapped[int] = mapped_column(Integer, primary_key=True)
    activation: Mapped[str] = mapped_column(String(20))
    grad_norm_w: Mapped[float | None] = mapped_column(Float, nullable=True)
    grad_norm_b: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight_norm: Mapped[float | None] = mapped_column(Float, nullable=True)
    update_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    activation_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    activation_std: Mapped[float | None] = mapped_column(Float, nullable=True)
    dead_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    saturated_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)


class TrainedModel(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(40), index=True)
    dataset_id: Mapped[str] = mapped_column(String(40))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[int] = mapped_column(Integer)
    outputs: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(20))
    classes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    feature_names: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    gradient_check: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    warnings: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    blob_id: Mapped[str] = mapped_column(ForeignKey("blobs.id"))
    # What ``continue_from`` needs: the final training state (stored once), the epochs it
    # reached and the model it was continued from; ``partial`` when training was stopped
    # before its end (``{"reason": "cancelled" | "time_limit", "epoch", "epochs"}``).
    state_blob_id: Mapped[str | None] = mapped_column(ForeignKey("blobs.id"), nullable=True)
    epochs_trained: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parent_model_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    partial: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (Index("ix_models_tenant_id_id", "tenant_id", "id"),)


class Worker(Base):
    """A live training worker (its main process), with the heartbeat it writes on a timer."""

    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class EventStream(Base):
    """An open event stream, counted against its API key's cap. A stream refreshes
    ``seen_at`` as it runs; rows of streams whose process died expire on their own."""

    __tablename__ = "event_streams"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str] = mapped_column(String(40))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (Index("ix_event_streams_key_id", "key_id"),)
