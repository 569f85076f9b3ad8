"""``/v1/models/{id}/export``: the model in a portable format (ONNX, the optional extra)."""

from __future__ import annotations

from typing import Any, Literal

from flask import Response

from backprop import Model
from backprop.onnx_export import INSTALL_HINT, ExportUnavailableError, to_onnx

from .. import db, storage
from ..errors import APIError
from ..models import TrainedModel
from ..schemas import Input, ModelPath, Problem
from .common import blueprint, owned

bp = blueprint("export", "export", "Trained models in portable formats.")


class ExportQuery(Input):
    format: Literal["onnx"] = "onnx"


ONNX_RESPONSE = {
    "description": "The network as ONNX (IR 8, opset 17; onnxruntime >= 1.12 loads it), the "
                   "input scaling folded in: input `inputs` (batch, n_inputs) float32; outputs "
                   "`outputs` (regression) or `probabilities` and `labels` (classification).",
    "content": {"application/onnx": {"schema": {"type": "string", "format": "binary"}}}}


@bp.get("/models/<model_id>/export",
        operation_id="export_model", summary="Export a model (ONNX)",
        responses={200: ONNX_RESPONSE, 501: Problem})
def export_model(path: ModelPath, query: ExportQuery) -> Any:
    """Download the model as ONNX (`?format=onnx`, the default). Needs the `onnx` extra on the
    server; without it the answer is a `501` problem naming the install command."""
    m = owned(TrainedModel, path.model_id, "model")
    model = Model.from_bytes(storage.get(db.request_session(), m.blob_id))
    try:
        data = to_onnx(model, name=m.id)
    except ExportUnavailableError:
        raise APIError(501, "Export Unavailable", "ONNX export is not installed on this "
                       f"server; install the extra: {INSTALL_HINT}") from None
    return Response(data, mimetype="application/onnx",
                    headers={"Content-Disposition": f'attachment; filename="{m.id}.onnx"'})
