"""``/v1/models``: trained models, their weights, and predictions."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app

from .. import continuation, db, storage
from ..model_schemas import ModelOut, ModelPage, PredictIn, PredictOut
from ..models import Blob, TrainedModel
from ..predict import ModelCache, predict, process_cache, to_array
from ..schemas import ListQuery, ModelPath, Problem
from .common import blueprint, newest_first, owned, settings, tenant

bp = blueprint("models", "models", "Trained models: inspect, download, predict.")


def out(m: TrainedModel) -> dict[str, Any]:
    return {"id": m.id, "job_id": m.job_id, "dataset_id": m.dataset_id, "spec": m.spec,
            "inputs": m.inputs, "outputs": m.outputs, "task": m.task, "classes": m.classes,
            "feature_names": m.feature_names, "metrics": m.metrics,
            "evaluation": m.evaluation, "gradient_check": m.gradient_check,
            "warnings": m.warnings or [], "epochs_trained": m.epochs_trained,
            "parent_model_id": m.parent_model_id, "partial": m.partial,
            "continuable": m.state_blob_id is not None, "created_at": m.created_at.isoformat()}


def _cache() -> ModelCache:
    """This process's models (see ``service.predict``)."""
    return process_cache(current_app)


@bp.get("/models", operation_id="list_models", summary="List trained models",
        responses={200: ModelPage})
def list_models(query: ListQuery) -> Any:
    return newest_first(TrainedModel, query, out)


@bp.get("/models/<model_id>", operation_id="get_model", summary="Get a trained model",
        responses={200: ModelOut})
def get_model(path: ModelPath) -> Any:
    return out(owned(TrainedModel, path.model_id, "model"))


@bp.post("/models/<model_id>/predict", operation_id="predict", summary="Predict with a model",
         responses={200: PredictOut})
def predict_model(path: ModelPath, body: PredictIn) -> Any:
    """The network's outputs for each input row; classifiers also give the probability of each
    class (in `classes` order), the most probable class of each row (`labels`) and `classes`.

    `outputs` is the output layer as the downloaded weights compute it: for a classifier with
    one sigmoid unit, `[[p]]` with p the probability of `classes[1]`, while `probabilities` is
    `[[1 - p, p]]`. A model deleted or a key revoked in another web process stops working here
    within `CACHE_TTL_SECONDS` (1 s)."""
    info, model = _cache().get(path.model_id, tenant(), db.request_session)
    X = to_array(body.inputs, info.inputs, settings().limits.max_predict_rows)
    return predict(model, X)


@bp.get("/models/<model_id>/weights",
        operation_id="get_model_weights", summary="Download a model's weights (.npz)",
        responses={200: {"description": "The weights and preprocessing as a portable .npz "
                         "(no pickle): params, W0.., b0.., mean, scale, meta (JSON).",
                         "content": {"application/octet-stream": {
                             "schema": {"type": "string", "format": "binary"}}}}})
def get_weights(path: ModelPath) -> Any:
    m = owned(TrainedModel, path.model_id, "model")
    data = storage.get(db.request_session(), m.blob_id)
    return Response(data, mimetype="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{m.id}.npz"'})


@bp.delete("/models/<model_id>", operation_id="delete_model", summary="Delete a model",
           responses={204: None, 409: Problem})
def delete_model(path: ModelPath) -> Any:
    """Delete a model (its weights and training state); `409` while a queued or running job
    continues from it."""
    m = owned(TrainedModel, path.model_id, "model")
    s = db.request_session()
    continuation.refuse_delete(s, m.id)
    blobs = [b for b in (s.get(Blob, m.blob_id),
                         s.get(Blob, m.state_blob_id) if m.state_blob_id else None) if b]
    s.delete(m)
    s.flush()
    for blob in blobs:
        s.delete(blob)
    s.commit()
    _cache().drop(m.id)
    return "", 204
