"""``bp datasets``: upload, list, show, delete."""

from __future__ import annotations

from pathlib import Path

import click

from ..resources import Dataset
from .common import client, field_option, json_option, quiet_option, show
from .output import as_json, fields, table


@click.group()
def datasets() -> None:
    """Upload and manage datasets.

    \b
    Example:
      bp datasets upload iris.csv --target species
      bp datasets list
    """


def _people(ds: Dataset) -> None:
    fields([("id", ds.id), ("name", ds.name), ("task", ds.task), ("rows", ds.rows),
            ("features", ds.features), ("outputs", ds.outputs), ("classes", ds.classes),
            ("feature_names", ds.feature_names), ("sha256", ds.sha256),
            ("created_at", ds.created_at)])


@datasets.command()
@click.argument("csv_file", metavar="FILE.csv",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--target", "-t", required=True, metavar="COLUMN[,COLUMN]",
              help="The target column(s); a non-numeric one means classification.")
@click.option("--name", "-n", default=None, help="Dataset name (default: the file's stem).")
@quiet_option
@json_option
def upload(csv_file: Path, target: str, name: str | None, quiet: bool, as_json_: bool) -> None:
    """Upload a CSV file with a header row.

    \b
    Example:
      bp datasets upload iris.csv --target species --name iris
      DS=$(bp datasets upload iris.csv --target species -q)
    """
    ds = client().datasets.create(csv_file, target=target, name=name)
    if quiet:
        click.echo(ds.id)
    else:
        show(ds.raw, None, as_json_, lambda: _people(ds))


@datasets.command("list")
@click.option("--limit", type=int, default=50, show_default=True,
              help="At most this many (0: all).")
@json_option
def list_(limit: int, as_json_: bool) -> None:
    """List datasets, newest first.

    \b
    Example:
      bp datasets list --limit 10
    """
    items = []
    for ds in client().datasets.list():
        items.append(ds)
        if limit and len(items) >= limit:
            break
    if as_json_:
        as_json([ds.raw for ds in items])
        return
    table(["id", "name", "task", "rows", "features", "outputs", "created_at"],
          [[d.id, d.name, d.task, d.rows, d.features, d.outputs, d.created_at] for d in items])


@datasets.command("show")
@click.argument("dataset_id")
@field_option
@json_option
def show_(dataset_id: str, field: str | None, as_json_: bool) -> None:
    """Show one dataset.

    \b
    Example:
      bp datasets show ds_0123 --json
    """
    ds = client().datasets.get(dataset_id)
    show(ds.raw, field, as_json_, lambda: _people(ds))


@datasets.command()
@click.argument("dataset_id")
def delete(dataset_id: str) -> None:
    """Delete a dataset (refused while a queued or running job uses it).

    \b
    Example:
      bp datasets delete ds_0123
    """
    client().datasets.delete(dataset_id)
    click.echo(f"deleted {dataset_id}")
