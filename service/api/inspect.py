"""Inside the network: per-layer diagnostics of a job, one traced backprop step and evaluation
of a model."""

from __future__ import annotations

from typing import Any

import numpy as np

import backprop

from .. import db, inspection
from ..errors import APIError, invalid
from ..inspect_data import check_rows, evaluation_data, trace_targets
from ..inspect_schemas import DiagnosticsQuery, EvaluateIn, TraceIn
from ..models import Job, TrainedModel
from ..report_schemas import DiagnosticsPage, EvaluateOut, TraceOut
from ..schemas import JobPath, ModelPath
from .common import blueprint, owned, settings
from .models import _cache as model_cache

bp = blueprint("inspect", "inspect", "Inside the network: diagnostics, a traced step, "
               "evaluation.")


def _model(model_id: str) -> tuple[TrainedModel, backprop.Model]:
    m = owned(TrainedModel, model_id, "model")
    return m, model_cache().get(m.id, m.tenant_id, db.request_session)[1]


@bp.get("/jobs/<job_id>/diagnostics", operation_id="get_job_diagnostics",
        summary="Per-layer diagnostics of a job",
        responses={200: DiagnosticsPage})
def get_diagnostics(path: JobPath, query: DiagnosticsQuery) -> Any:
    """Per-layer diagnostics by epoch (jobs with `training.diagnostics`); `cursor` is the last
    epoch already seen."""
    job = owned(Job, path.job_id, "job")
    after = 0
    if query.cursor:
        if not query.cursor.isdigit():
            raise APIError(422, "Unprocessable Content", "cursor must be a next_cursor value "
                           "from a previous page", errors=[{"loc": ["query", "cursor"],
                                                            "msg": "not a valid cursor"}])
        after = int(query.cursor)
    return inspection.page(db.request_session(), job.id, after, query.limit)


def _lists(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


@bp.post("/models/<model_id>/trace", operation_id="trace_model", summary="Trace one backprop step",
         responses={200: TraceOut})
def trace_model(path: ModelPath, body: TraceIn) -> Any:
    """One forward and backward pass for the rows at the model's weights: per layer z, a,
    delta, dE/dW and dE/db (float64); with `check`, central differences beside them."""
    m, model = _model(path.model_id)
    limits = settings().limits
    n_params = model.network.n_params
    if n_params > limits.max_trace_parameters:
        raise invalid(["path", "model_id"], f"the model has {n_params} parameters; a trace "
                      f"returns each weight and gradient, up to {limits.max_trace_parameters} "
                      "(MAX_TRACE_PARAMETERS)")
    if body.check and n_params > limits.max_trace_check_parameters:
        raise invalid(["check"], f"the model has {n_params} parameters; numerical gradients "
                      f"are computed for up to {limits.max_trace_check_parameters} "
                      "(MAX_TRACE_CHECK_PARAMETERS)")
    X = check_rows(body.inputs, m.inputs, limits.max_trace_rows, "MAX_TRACE_ROWS")
    Y = trace_targets(model, body.targets, body.labels, len(X))
    training = model.spec["training"]
    with np.errstate(all="ignore"):  # overflow is answered below, not raised as a warning
        if model.standardizer is not None:
            X = model.standardizer.transform(X)
        result = backprop.trace(model.network, X, Y, training["loss"], training["l2"],
                                check=body.check)
    bad = [i for i in range(len(X)) if not np.isfinite(X[i]).all() or not all(
        np.isfinite(layer[k][i]).all() for layer in result["layers"] for k in ("z", "delta"))]
    if bad or not np.isfinite(result["loss"]):
        row = bad[0] if bad else 0
        raise invalid(["inputs", row], f"row {row} gives non-finite values; its values are far "
                      "outside the range the model was trained on")
    layers = [{key: _lists(layer.get(key)) for key in (
        "layer", "activation", "W", "b", "z", "a", "delta", "grad_W", "grad_b", "numeric_grad_W",
        "numeric_grad_b", "relative_error_W", "relative_error_b")} for layer in result["layers"]]
    return {"loss": result["loss"], "loss_function": training["loss"], "l2": result["l2"],
            "rows": result["rows"], "inputs": X.tolist(), "targets": Y.tolist(),
            "layers": layers, "check": result.get("check")}


@bp.post("/models/<model_id>/evaluate", operation_id="evaluate_model", summary="Evaluate a model",
         responses={200: EvaluateOut})
def evaluate_model(path: ModelPath, body: EvaluateIn) -> Any:
    """Metrics on a stored dataset or inline rows: classification accuracy, per-class
    precision/recall/F1, macro and weighted averages, confusion matrix, log loss, ROC AUC;
    regression MSE, RMSE, MAE and R² per output and overall (scikit-learn's definitions)."""
    m, model = _model(path.model_id)
    X, y, loc = evaluation_data(db.request_session(), m, model, body, settings().limits)
    with np.errstate(all="ignore"):
        try:
            report = backprop.evaluate(model, X, y)
        except ValueError as exc:  # outputs that overflow
            raise invalid(loc, f"{exc}; its values are far outside the range the model was "
                          "trained on") from None
    return report
