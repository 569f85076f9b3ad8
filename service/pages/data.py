"""Datasets and models pages; a model's predict form (pasted rows or a CSV file) and its
weights download."""

from __future__ import annotations

import csv
import math
from typing import Any

from flask import Response, abort, current_app, render_template, request
from sqlalchemy import select

from .. import db, storage
from ..api import datasets as datasets_api
from ..api import models as models_api
from ..api.common import newest_first, owned
from ..errors import APIError
from ..models import Dataset, Job, TrainedModel
from ..predict import predict, process_cache, to_array
from ..schemas import ListQuery
from . import bp, present


def _owned(entity: Any, ident: str, what: str) -> Any:
    try:
        return owned(entity, ident, what)
    except APIError:
        abort(404, f"There is no {what} {ident!r} for your API key.")


def _page(entity: Any, out: Any) -> dict[str, Any]:
    cursor = request.args.get("cursor") or None
    return newest_first(entity, ListQuery(limit=50, cursor=cursor[:100] if cursor else None), out)


@bp.get("/datasets")
def datasets_list() -> Any:
    result = _page(Dataset, datasets_api.out)
    return render_template("datasets.html", rows=[present.dataset_row(d) for d in result["items"]],
                           next_cursor=result["next_cursor"])


@bp.get("/datasets/<dataset_id>")
def dataset_page(dataset_id: str) -> Any:
    ds = _owned(Dataset, dataset_id, "dataset")
    job_ids = db.request_session().scalars(
        select(Job.id).where(Job.dataset_id == ds.id, Job.tenant_id == ds.tenant_id)
        .order_by(Job.id.desc()).limit(20)).all()
    return render_template("dataset.html", ds=present.dataset_row(datasets_api.out(ds)),
                           job_ids=job_ids)


@bp.get("/models")
def models_list() -> Any:
    result = _page(TrainedModel, models_api.out)
    return render_template("models.html", rows=[present.model_row(m) for m in result["items"]],
                           next_cursor=result["next_cursor"])


def parse_rows(text: str, feature_names: list[str]) -> list[list[float]]:
    """Rows from pasted text or a CSV file: comma, semicolon, tab or space separated; a first
    line of the model's feature names (in any order) is a header and orders the columns."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("no rows: paste one row of numbers per line, or choose a CSV file")
    dialect = "excel-tab" if "\t" in lines[0] else "excel"
    delim = next((d for d in ",;" if d in lines[0]), None)
    if delim is None and dialect == "excel":
        table = [line.split() for line in lines]
    else:
        table = list(csv.reader(lines, dialect, **({"delimiter": delim} if delim else {})))
    order = None
    head = [cell.strip() for cell in table[0]]
    if not any(_is_number(cell) for cell in head):  # a header: names only
        if sorted(head) != sorted(map(str, feature_names)):
            raise ValueError(f"the header {head} does not name the model's features "
                             f"{list(feature_names)}")
        order = [head.index(str(name)) for name in feature_names]
        table = table[1:]
    rows = []
    for i, cells in enumerate(table, start=1):
        cells = [c.strip() for c in cells]
        if order is not None and len(cells) == len(order):
            cells = [cells[j] for j in order]
        try:
            values = [float(c) for c in cells]
        except ValueError:
            raise ValueError(f"row {i}: {cells} is not all numbers") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"row {i}: NaN and infinity are not accepted")
        rows.append(values)
    return rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _predictions(m: TrainedModel, text: str) -> dict[str, Any]:
    rows = parse_rows(text, m.feature_names)
    settings = current_app.config["SETTINGS"]
    X = to_array(rows, m.inputs, settings.limits.max_predict_rows)
    _, model = process_cache(current_app).get(m.id, m.tenant_id, db.request_session)
    result = predict(model, X)
    probs = result.get("probabilities")
    table = []
    for i, row in enumerate(rows):
        entry = {"n": i + 1, "inputs": ", ".join(present.num(v) for v in row)}
        if "labels" in result:
            entry["label"] = str(result["labels"][i])
        values = probs[i] if probs is not None else result["outputs"][i]
        entry["cells"] = [present.num(v) for v in values]
        table.append(entry)
    columns = [str(c) for c in m.classes] if m.classes and probs is not None else \
        [f"output {j}" for j in range(m.outputs)]
    return {"rows": table, "columns": columns, "labels": "labels" in result}


@bp.route("/models/<model_id>", methods=["GET", "POST"])
def model_page(model_id: str) -> Any:
    m = _owned(TrainedModel, model_id, "model")
    result, error, text, status = None, None, "", 200
    if request.method == "POST":
        upload = request.files.get("csv")
        text = request.form.get("rows", "")
        if upload is not None and upload.filename:
            text = upload.read(current_app.config["MAX_CONTENT_LENGTH"]).decode("utf-8", "replace")
        try:
            result = _predictions(m, text)
        except ValueError as exc:
            error, status = str(exc), 422
        except APIError as exc:
            error, status = exc.detail, exc.status
    return render_template("model.html", model=present.model_row(models_api.out(m)),
                           result=result, error=error, text=text), status


@bp.get("/models/<model_id>/weights")
def model_weights(model_id: str) -> Any:
    m = _owned(TrainedModel, model_id, "model")
    return Response(storage.get(db.request_session(), m.blob_id),
                    mimetype="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{m.id}.npz"'})
