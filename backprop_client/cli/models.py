"""``bp models``: list, show, predict, download."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click

from ..resources import Model, Prediction
from .common import client, field_option, json_option, show
from .output import as_json, fields, stdin_text, table


@click.group()
def models() -> None:
    """Trained models: inspect, predict, download.

    \b
    Example:
      bp models list
      echo '[[5.1, 3.5, 1.4, 0.2]]' | bp models predict mdl_0123
    """


def _people(m: Model) -> None:
    fields([("id", m.id), ("job_id", m.job_id), ("dataset_id", m.dataset_id),
            ("task", m.task), ("inputs", m.inputs), ("outputs", m.outputs),
            ("classes", m.classes), ("feature_names", m.feature_names),
            *((k, v) for k, v in m.metrics.items() if not isinstance(v, dict | list)),
            ("created_at", m.created_at)])


@models.command("list")
@click.option("--limit", type=int, default=50, show_default=True,
              help="At most this many (0: all).")
@json_option
def list_(limit: int, as_json_: bool) -> None:
    """List models, newest first.

    \b
    Example:
      bp models list --json
    """
    items = []
    for m in client().models.list():
        items.append(m)
        if limit and len(items) >= limit:
            break
    if as_json_:
        as_json([m.raw for m in items])
        return
    table(["id", "task", "inputs", "outputs", "loss", "val_loss", "job_id", "created_at"],
          [[m.id, m.task, m.inputs, m.outputs, m.metrics.get("loss"), m.metrics.get("val_loss"),
            m.job_id, m.created_at] for m in items])


@models.command("show")
@click.argument("model_id")
@field_option
@json_option
def show_(model_id: str, field: str | None, as_json_: bool) -> None:
    """Show a model.

    \b
    Example:
      bp models show mdl_0123
    """
    m = client().models.get(model_id)
    show(m.raw, field, as_json_, lambda: _people(m))


def read_rows(text: str, model: Model) -> list[list[float]]:
    """Rows from JSON (``[[...], ...]`` or ``{"inputs": [...]}``) or CSV. A CSV header row is
    skipped; when it names the model's features, those columns are taken in the model's order
    (so the training CSV, target column included, can be passed as it is)."""
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        data = json.loads(stripped)
        rows = data.get("inputs") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise click.UsageError("the JSON must be a list of rows or {\"inputs\": [...]}")
        return rows
    records = [r for r in csv.reader(io.StringIO(text)) if r]
    if not records:
        raise click.UsageError("no rows in the input")
    try:
        [float(v) for v in records[0]]
        header = None
    except ValueError:
        header, records = records[0], records[1:]
    columns = None
    if header is not None and model.feature_names and set(model.feature_names) <= set(header):
        columns = [header.index(name) for name in model.feature_names]
    try:
        return [[float(r[i]) for i in columns] if columns is not None else [float(v) for v in r]
                for r in records]
    except ValueError as exc:
        raise click.UsageError(f"a row holds a value that is not a number: {exc}") from None


def _print(pred: Prediction, model: Model) -> None:
    if pred.labels is not None and pred.probabilities is not None:
        classes = [str(c) for c in (model.classes or range(pred.probabilities.shape[1]))]
        if pred.probabilities.shape[1] != len(classes):  # one sigmoid unit: P(second class)
            classes = [f"p({classes[-1]})"]
        table(["row", "label", *classes],
              [[i, label, *probs] for i, (label, probs) in
               enumerate(zip(pred.labels.tolist(), pred.probabilities.tolist(), strict=True))])
    else:
        k = pred.outputs.shape[1]
        table(["row", *(f"output{j}" for j in range(k))],
              [[i, *row] for i, row in enumerate(pred.outputs.tolist())])


@models.command()
@click.argument("model_id")
@click.option("--input", "-i", "input_file", type=click.File("r"),
              help="Rows as CSV (header optional) or JSON; default: JSON on stdin.")
@json_option
def predict(model_id: str, input_file: Any, as_json_: bool) -> None:
    """Predict rows: labels and probabilities for a classifier, outputs otherwise.

    \b
    Example:
      bp models predict mdl_0123 --input rows.csv
      echo '[[0, 1], [1, 1]]' | bp models predict mdl_0123 --json
    """
    model = client().models.get(model_id)
    rows = read_rows(input_file.read() if input_file else stdin_text(), model)
    pred = model.predict(rows)
    if as_json_:
        out: dict[str, Any] = {"outputs": pred.outputs.tolist()}
        if pred.labels is not None and pred.probabilities is not None:
            out["labels"] = pred.labels.tolist()
            out["probabilities"] = pred.probabilities.tolist()
        as_json(out)
    else:
        _print(pred, model)


@models.command()
@click.argument("model_id")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the .npz (default: MODEL_ID.npz).")
def download(model_id: str, output: Path | None) -> None:
    """Download a model's weights and preprocessing as a portable .npz, loadable with
    backprop.Model.load (no pickle).

    \b
    Example:
      bp models download mdl_0123 -o model.npz
      python -c "import backprop; print(backprop.Model.load('model.npz').predict([[0, 1]]))"
    """
    path = output or Path(f"{model_id}.npz")
    client().models.download(model_id, path)
    click.echo(str(path))
