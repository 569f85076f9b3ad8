"""``/v1/datasets``: upload (JSON or CSV), list, get, delete."""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from sqlalchemy import select

from .. import csv_upload, datasets, db
from ..errors import APIError
from ..models import Blob, Dataset, Job
from ..schemas import DatasetCreate, DatasetOut, DatasetPage, DatasetPath, ListQuery, Problem
from .common import accepts, blueprint, newest_first, owned, settings, tenant

bp = blueprint("datasets", "datasets", "Upload training data as JSON or CSV.")


def out(ds: Dataset) -> dict[str, Any]:
    return {"id": ds.id, "name": ds.name, "rows": ds.rows, "features": ds.features,
            "outputs": ds.outputs, "task": ds.task, "classes": ds.classes,
            "feature_names": ds.feature_names, "sha256": ds.sha256,
            "created_at": ds.created_at.isoformat()}


@bp.post("/datasets", operation_id="create_dataset", summary="Upload a dataset (JSON or CSV)",
         responses={201: DatasetOut, 400: Problem})
@accepts("application/json", "text/csv")
def create_dataset() -> Any:
    """Upload a dataset: a JSON body, or `text/csv` with `?name=...&target=col[,col]`."""
    limits = settings().limits
    if request.mimetype == "text/csv":
        extra = set(request.args) - {"name", "target"}
        if extra:
            raise APIError(422, "Unprocessable Content", f"unknown query parameter "
                           f"{sorted(extra)[0]!r}; a CSV upload takes name and target",
                           errors=[{"loc": ["query", sorted(extra)[0]],
                                    "msg": "unknown query parameter"}])
        parsed = csv_upload.from_csv(request.stream, request.args.get("name"),
                                     request.args.get("target"), limits)
    else:
        if request.args:
            key = next(iter(request.args))
            raise APIError(422, "Unprocessable Content", f"unknown query parameter {key!r} "
                           "(name and target are for CSV uploads)",
                           errors=[{"loc": ["query", key], "msg": "unknown query parameter"}])
        parsed = datasets.from_json(DatasetCreate.model_validate(request.get_json()), limits)
    ds = datasets.store(db.request_session(), tenant(), parsed)
    db.request_session().commit()
    return out(ds), 201, {"Location": url_for(".get_dataset", dataset_id=ds.id)}


@bp.get("/datasets", operation_id="list_datasets", summary="List datasets",
        responses={200: DatasetPage})
def list_datasets(query: ListQuery) -> Any:
    """Datasets of this API key's tenant, newest first."""
    return newest_first(Dataset, query, out)


@bp.get("/datasets/<dataset_id>", operation_id="get_dataset", summary="Get a dataset",
        responses={200: DatasetOut})
def get_dataset(path: DatasetPath) -> Any:
    return out(owned(Dataset, path.dataset_id, "dataset"))


@bp.delete("/datasets/<dataset_id>", operation_id="delete_dataset", summary="Delete a dataset",
           responses={204: None, 409: Problem})
def delete_dataset(path: DatasetPath) -> Any:
    """Delete a dataset; `409` while a queued or running job uses it."""
    ds = owned(Dataset, path.dataset_id, "dataset")
    s = db.request_session()
    busy = s.scalar(select(Job.id).where(Job.dataset_id == ds.id,
                                         Job.status.in_(("queued", "running"))).limit(1))
    if busy:
        raise APIError(409, "Conflict", f"dataset {ds.id} is used by job {busy}, which is "
                       "queued or running; cancel it or wait for it to finish")
    # Finished jobs and models keep the dataset's id as a plain reference.
    blob = s.get(Blob, ds.blob_id)
    s.delete(ds)
    s.flush()
    if blob is not None:
        s.delete(blob)
    s.commit()
    return "", 204
