"""The OpenAPI document is clean for client generators: a stable snake_case operationId (named
by the route, not derived from the path) and a summary on every operation, prose descriptions,
and both bodies of the dataset upload declared."""

from __future__ import annotations

import re
from typing import Any

EXPECTED = {
    ("post", "/v1/datasets"): "create_dataset", ("get", "/v1/datasets"): "list_datasets",
    ("get", "/v1/datasets/{dataset_id}"): "get_dataset",
    ("delete", "/v1/datasets/{dataset_id}"): "delete_dataset",
    ("post", "/v1/jobs"): "create_job", ("get", "/v1/jobs"): "list_jobs",
    ("get", "/v1/jobs/{job_id}"): "get_job", ("get", "/v1/jobs/{job_id}/history"):
    "get_job_history", ("post", "/v1/jobs/{job_id}/cancel"): "cancel_job",
    ("get", "/v1/models"): "list_models", ("get", "/v1/models/{model_id}"): "get_model",
    ("post", "/v1/models/{model_id}/predict"): "predict",
    ("get", "/v1/models/{model_id}/weights"): "get_model_weights",
    ("delete", "/v1/models/{model_id}"): "delete_model",
    ("post", "/v1/sweeps"): "create_sweep", ("get", "/v1/sweeps"): "list_sweeps",
    ("get", "/v1/sweeps/{sweep_id}"): "get_sweep",
    ("get", "/v1/sweeps/{sweep_id}/trials"): "list_sweep_trials",
    ("post", "/v1/sweeps/{sweep_id}/cancel"): "cancel_sweep",
    ("get", "/v1/jobs/{job_id}/diagnostics"): "get_job_diagnostics",
    ("post", "/v1/models/{model_id}/trace"): "trace_model",
    ("post", "/v1/models/{model_id}/evaluate"): "evaluate_model",
}


def _operations(app: Any) -> dict[tuple[str, str], dict[str, Any]]:
    doc = app.test_client().get("/openapi.json").get_json()
    return {(method, path): op for path, item in doc["paths"].items()
            for method, op in item.items() if isinstance(op, dict) and "responses" in op}


def test_operation_ids_and_summaries(app: Any) -> None:
    ops = _operations(app)
    for key, op_id in EXPECTED.items():
        assert ops[key]["operationId"] == op_id, key
    ids = [op["operationId"] for op in ops.values()]
    assert len(ids) == len(set(ids))
    for key, op in ops.items():
        # a route that forgets operation_id= gets flask-openapi3's "<bp>_<view>_<path>_<method>"
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", op["operationId"]), key
        assert not op["operationId"].endswith(f"_{key[0]}"), (key, op["operationId"])
        assert op.get("summary"), key
        assert "<br/>" not in op.get("description", ""), key


def test_the_csv_body_is_declared(app: Any) -> None:
    body = _operations(app)[("post", "/v1/datasets")]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "text/csv"}
    csv = body["content"]["text/csv"]
    assert csv["schema"]["type"] == "string" and csv["example"].startswith("sepal")
    params = {p["name"] for p in _operations(app)[("post", "/v1/datasets")]["parameters"]}
    assert {"name", "target"} <= params
