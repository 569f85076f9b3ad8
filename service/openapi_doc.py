"""Finishing the generated OpenAPI document: problem-details error responses as they are really
sent, bearer auth on ``/v1``, both body types of the dataset upload, the data of each event of
the job event stream (``x-events``), and clean operations for
generated clients (each route names its ``operation_id`` and ``summary``; descriptions are the
view's docstring as prose)."""

from __future__ import annotations

from typing import Any

from .schemas import DatasetCreate, Problem

CSV_EXAMPLE = "sepal_length,sepal_width,species\n5.1,3.5,setosa\n7.0,3.2,versicolor\n"
CSV_BODY = ("A CSV file with a header row: the feature columns and the target column(s) named in "
            "`target`. A non-numeric target column makes a classification dataset.")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ERRORS = {
    "400": "Malformed request (e.g. JSON that does not parse)",
    "401": "Missing or invalid API key",
    "404": "No such resource for this API key's tenant",
    "405": "Method not allowed",
    "413": "A size limit was exceeded (the limit is named)",
    "415": "Unsupported Content-Type",
    "422": "Validation failed; `errors` lists each field",
    "429": "Rate limit exceeded; see Retry-After",
    "503": "Database or broker unavailable; retry later",
}
# Answered by the HTTP server (gunicorn, service/gunicorn_worker.py) before the app sees the
# request, on every path; problem details too.
SERVER_ERRORS = {
    "400": "Malformed request line or header",
    "408": "The request did not arrive in time (CLIENT_TIMEOUT_SECONDS)",
    "414": "Request line (URL) too long",
    "431": "Too many header fields, or one too large",
}


EVENTS_PATH = "/v1/jobs/{job_id}/events"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


# The JSON in each event's ``data:`` line, by event name (OpenAPI 3.1 has no field for it).
STREAM_EVENTS = {
    "epoch": {"allOf": [_ref("HistoryRow")], "description": "A history row, with `progress` "
              "(`{epoch, epochs, fraction, eta_seconds}`); `id: N`."},
    "diagnostics": {"allOf": [_ref("DiagnosticsEpoch")], "description": "Right after the row "
                    "of an epoch that recorded diagnostics (`training.diagnostics`); `id: N.d`."},
    "status": {"allOf": [_ref("JobOut")], "description": "At the start and on each change."},
    "end": {"allOf": [_ref("JobOut")], "description": "The final job (with its `warnings`); "
            "the last event."},
}


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": PROBLEM_REF}}}


def _prose(op: dict[str, Any]) -> None:
    """flask-openapi3 joins a docstring's lines with ``<br/>``: make it one paragraph again, and
    give an operation without a summary one from its id (a route should name its own)."""
    if op.get("description"):
        op["description"] = " ".join(op["description"].replace("<br/>", " ").split())
    else:
        op.pop("description", None)
    if not op.get("summary") and op.get("operationId"):
        op["summary"] = op["operationId"].replace("_", " ").capitalize()


def finish_document(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in problem.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["Problem"] = problem
    schemas.pop("ValidationErrorModel", None)
    dataset = DatasetCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in dataset.pop("$defs", {}).items():
        schemas[name] = sub
    schemas["DatasetCreate"] = dataset

    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            _prose(op)
            responses = op["responses"]
            for code, resp in list(responses.items()):
                if code.startswith(("4", "5")):
                    responses[code] = _problem_response(resp.get("description") or
                                                        ERRORS.get(code, "Error"))
            for code, description in SERVER_ERRORS.items():
                responses.setdefault(code, _problem_response(description))
            if not path.startswith("/v1"):
                op.pop("security", None)
                responses.pop("422", None)  # no parameters, no body: nothing to validate
                if path == "/readyz":
                    responses["503"] = {"description": "A dependency is down",
                                        "content": {"application/json": {
                                            "schema": {"$ref": "#/components/schemas/Ready"}}}}
                continue
            wanted = ["401", "405", "422", "429", "503"]
            if "{" in path:
                wanted.append("404")
            if method in ("post", "put", "patch"):
                wanted += ["400", "413", "415"]
            for code in wanted:
                responses.setdefault(code, _problem_response(ERRORS[code]))
            op["security"] = [{"bearer": []}]
            if path == EVENTS_PATH and method == "get":
                responses["200"]["content"]["text/event-stream"]["x-events"] = STREAM_EVENTS
            if path == "/v1/datasets" and method == "post":
                op["requestBody"] = {
                    "required": True,
                    "description": "The dataset as JSON (`DatasetCreate`) or as CSV (`text/csv`, "
                                   "with `?target=` naming the target columns).",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/DatasetCreate"}},
                        "text/csv": {"schema": {"type": "string", "description": CSV_BODY},
                                     "example": CSV_EXAMPLE},
                    },
                }
                op.setdefault("parameters", []).extend([
                    {"name": "name", "in": "query", "required": False,
                     "description": "Dataset name (CSV uploads)", "schema": {"type": "string"}},
                    {"name": "target", "in": "query", "required": False,
                     "description": "Target column(s), comma-separated (CSV uploads)",
                     "schema": {"type": "string"}},
                ])
