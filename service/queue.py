"""The Celery app object and sending tasks by name (the API never imports the worker code).

JSON only, no result backend, prefetch 1, late acks, tasks rejected back to the queue when their
worker is lost; the Redis visibility timeout is above the hard time limit.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from .config import Settings

TRAIN_TASK = "backprop.train"
QUEUE = "training"


def celery_config(settings: Settings) -> dict[str, Any]:
    url = settings.broker_url
    options: dict[str, Any] = {}
    transport = None
    if url.startswith("filesystem"):
        transport = "service.fs_broker:Transport"  # kombu's, with atomic writes
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        options = {"data_folder_in": str(folder / "queue"),
                   "data_folder_out": str(folder / "queue"),
                   "processed_folder": str(folder / "processed"),
                   "control_folder": str(folder / "control"),  # else ./control in the cwd
                   "store_processed": False,
                   "polling_interval": 0.01}  # a job starts within ~10 ms of its POST
    else:
        options = {"visibility_timeout": int(settings.task_time_limit + 600)}
    return {
        "broker_url": url,
        "broker_transport": transport,
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 5,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("backprop")
    app.conf.update(celery_config(settings))
    return app


def send_training(celery: Celery, job_id: str) -> None:
    """Enqueue the training of ``job_id`` (after the job row is committed)."""
    celery.send_task(TRAIN_TASK, args=[job_id], queue=QUEUE, retry=True,
                     retry_policy={"max_retries": 2, "interval_start": 0.2,
                                   "interval_step": 0.5, "interval_max": 1.0})
