"""``continue_from``: a job that trains a stored model further.

The job's spec is the model's own, with what the body gives in its place: ``network`` (which
must describe the same architecture) and each ``training`` field given (``optimizer`` and
``lr_schedule`` of the same name change only the fields given). ``training.epochs`` counts the
epochs to train on from the model's, which history rows and progress number on from. The
resolved spec says what was kept: the optimiser state (when the optimiser and its
hyperparameters are unchanged), the schedule, the random generator (same seed), and which
training fields changed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backprop import SpecError, check_continuable

from .errors import APIError, invalid
from .models import Dataset, Job, TrainedModel
from .schemas import JobCreate

LOC = ["continue_from", "model_id"]


def source(s: Session, tenant_id: str, model_id: str) -> TrainedModel:
    """The tenant's model to continue from; 422 when there is none or it keeps no state."""
    m = s.get(TrainedModel, model_id)
    if m is None or m.tenant_id != tenant_id:
        raise invalid(LOC, f"no model with id {model_id!r}")
    if m.state_blob_id is None:
        raise invalid(LOC, f"model {model_id} keeps no training state (it was trained before "
                      "models kept one); train a new model instead")
    return m


def engine_spec(body: JobCreate, src: TrainedModel) -> dict[str, Any]:
    """The body's spec laid over the model's: the fields the client gave replace the model's.
    An ``optimizer`` or ``lr_schedule`` of the same name (or none) changes only the fields it
    gives (``{"learning_rate": 0.001}`` keeps Adam and its betas); another name replaces it."""
    given = body.engine_spec()
    old = src.spec["training"]
    training = {k: v for k, v in old.items() if k != "epochs"}
    training.update(given.get("training", {}))
    for name in ("optimizer", "lr_schedule"):
        part = getattr(body.training, name, None) if body.training else None
        if part is not None and isinstance(old.get(name), dict) and (
                "name" not in part.model_fields_set or part.name == old[name].get("name")):
            training[name] = {**old[name], **part.model_dump(exclude_unset=True)}
    training.setdefault("epochs", old["epochs"])
    return {"network": given.get("network", src.spec["network"]), "training": training}


def check_data(ds: Dataset, src: TrainedModel) -> None:
    """The dataset can train the model: same task and width, its classes among the model's."""
    if ds.task != src.task:
        raise invalid(["dataset_id"], f"dataset {ds.id} is a {ds.task} dataset; model {src.id} "
                      f"is a {src.task} model")
    if ds.features != src.inputs:
        raise invalid(["dataset_id"], f"dataset {ds.id} has {ds.features} input columns; model "
                      f"{src.id} takes {src.inputs}")
    if src.task == "classification":
        unknown = [c for c in ds.classes or [] if c not in (src.classes or [])]
        if unknown:
            raise invalid(["dataset_id"], f"dataset {ds.id} has classes {unknown} that model "
                          f"{src.id} does not know (its classes are {src.classes})")
    elif ds.outputs != src.outputs:
        raise invalid(["dataset_id"], f"dataset {ds.id} has {ds.outputs} target columns; model "
                      f"{src.id} has {src.outputs} outputs")


def n_outputs(src: TrainedModel) -> int:
    """What the output layer is checked against: the model's classes or target columns."""
    return len(src.classes) if src.classes else src.outputs


def check(spec: dict[str, Any], src: TrainedModel) -> None:
    """``spec`` (its network resolved) has the model's architecture, dtype and scaling; else
    a 422 naming what differs."""
    try:
        check_continuable(spec, src.spec)
    except SpecError as exc:
        raise invalid(list(exc.loc), exc.msg) from None


def record(spec: dict[str, Any], src: TrainedModel) -> dict[str, Any]:
    """Check the resolved ``spec`` against the model's and add the ``continue_from`` record:
    where it starts and what it keeps."""
    check(spec, src)
    old, new = src.spec["training"], spec["training"]
    same_optimizer = old["optimizer"] == new["optimizer"]
    changed = sorted(k for k in new if k != "epochs" and new.get(k) != old.get(k))
    spec["continue_from"] = {
        "model_id": src.id,
        "job_id": src.job_id,
        "start_epoch": src.epochs_trained or 0,
        "optimizer_state": "kept" if same_optimizer else "fresh",
        "schedule_state": "kept" if same_optimizer and old["lr_schedule"] == new["lr_schedule"]
        else "fresh",
        "rng": "kept" if old["seed"] == new["seed"] else "fresh",
        "changed": changed,
    }
    return spec


def start_epoch(spec: dict[str, Any]) -> int:
    """The epoch a job starts after: the epochs of the model it continues, else 0."""
    return int((spec.get("continue_from") or {}).get("start_epoch", 0))


def total_epochs(spec: dict[str, Any]) -> int:
    """The epoch a job trains up to: its own epochs, after the model's it continues."""
    return start_epoch(spec) + spec["training"]["epochs"]


def fraction(spec: dict[str, Any], epoch: int, epochs: int) -> float:
    """How much of a job's own epochs are done when it has reached ``epoch`` of ``epochs``."""
    start = start_epoch(spec)
    return max(0.0, (epoch - start) / max(1, epochs - start))


def in_use(s: Session, model_id: str) -> Job | None:
    """A queued or running job that continues from the model (which must not go meanwhile)."""
    return s.scalar(select(Job).where(Job.parent_model_id == model_id,
                                      Job.status.in_(("queued", "running"))).limit(1))


def refuse_delete(s: Session, model_id: str) -> None:
    job = in_use(s, model_id)
    if job is not None:
        raise APIError(409, "Conflict", f"model {model_id} is being trained further by job "
                       f"{job.id} ({job.status}); cancel it or wait for it to end")
