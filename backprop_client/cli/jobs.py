"""``bp train`` and ``bp jobs``: start, list, show, watch, cancel, history."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import Conflict, JobError
from ..resources import Job
from .common import client, field_option, json_option, quiet_option, show
from .output import as_json, fields, problem, table
from .plot import loss_curve


def _people(job: Job) -> None:
    p, m = job.progress, job.metrics or {}
    rows: list[tuple[str, Any]] = [
        ("id", job.id), ("status", job.status), ("dataset_id", job.dataset_id),
        ("model_id", job.model_id),
        ("progress", f"epoch {p.get('epoch', 0)}/{p.get('epochs', '?')}"),
        ("loss", m.get("loss")), ("val_loss", m.get("val_loss")),
        ("accuracy", m.get("accuracy")), ("val_accuracy", m.get("val_accuracy")),
        ("attempts", job.attempts), ("created_at", job.created_at),
        ("started_at", job.started_at), ("finished_at", job.finished_at)]
    if job.error:
        rows.append(("error", f"{job.error.get('title')}: {job.error.get('detail')}"))
    fields(rows)


def wait_interactively(job: Job, *, progress: bool = True) -> Job:
    """``job.wait()`` with a progress bar; Ctrl-C asks whether to cancel the job."""
    try:
        return job.wait(progress=progress)
    except KeyboardInterrupt:
        click.echo("", err=True)
        if sys.stdin.isatty() and click.confirm(f"Cancel job {job.id}?", default=False,
                                                err=True):
            try:
                client().jobs.cancel(job.id)
                click.echo(f"cancel requested for {job.id}", err=True)
            except Conflict as exc:
                problem(exc)
        else:
            click.echo(f"job {job.id} goes on; follow it with: bp jobs watch {job.id}",
                       err=True)
        raise click.exceptions.Exit(130) from None


def _finish(job: Job, quiet: bool, as_json_: bool, wait: bool) -> None:
    if wait:
        try:
            job = wait_interactively(job)
        except JobError as exc:
            problem(exc)
            if as_json_:
                as_json(exc.job.raw)
            raise click.exceptions.Exit(1) from None
    if quiet:
        click.echo(job.model_id if wait else job.id)
    else:
        show(job.raw, None, as_json_, lambda: _people(job))


@click.command()
@click.argument("dataset_id")
@click.option("--layers", "-l", metavar="UNITS:ACT,...",
              help="Hidden and output layers, e.g. 16:tanh,3:softmax.")
@click.option("--optimizer", "-o", help="sgd, adagrad, rmsprop, adam or rprop.")
@click.option("--lr", "learning_rate", type=float, help="Learning rate.")
@click.option("--momentum", type=float, help="SGD momentum.")
@click.option("--epochs", "-e", type=int)
@click.option("--batch-size", "-b", help="Rows per batch, or 'full'.")
@click.option("--validation-split", type=float, help="Fraction held out, e.g. 0.2.")
@click.option("--loss", help="mse, cross_entropy or binary_cross_entropy.")
@click.option("--seed", type=int)
@click.option("--spec", "spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON job body (network, training); the options above override it.")
@click.option("--idempotency-key", help="Send this key (a retry with it returns the same job).")
@click.option("--wait", "-w", is_flag=True,
              help="Follow the job with a progress bar until it ends (Ctrl-C offers to cancel).")
@quiet_option
@json_option
def train(dataset_id: str, layers: str | None, optimizer: str | None,
          learning_rate: float | None, momentum: float | None, epochs: int | None,
          batch_size: str | None, validation_split: float | None, loss: str | None,
          seed: int | None, spec_file: Path | None, idempotency_key: str | None, wait: bool,
          quiet: bool, as_json_: bool) -> None:
    """Start a training job on DATASET_ID. With -q prints the job id, or with --wait the
    model id.

    \b
    Example:
      bp train ds_0123 --layers 16:tanh,3:softmax --optimizer adam --lr 0.01 \\
        --epochs 200 --batch-size 32 --validation-split 0.2 --wait
    """
    spec = json.loads(spec_file.read_text()) if spec_file else {}
    if not isinstance(spec, dict):
        raise click.BadParameter("the spec file must hold a JSON object", param_hint="--spec")
    if not layers and not spec.get("network", {}).get("layers"):
        raise click.UsageError("give --layers (e.g. 16:tanh,3:softmax) or a --spec with "
                               "network.layers")
    extra: dict[str, Any] = {k: v for k, v in {
        "learning_rate": learning_rate, "momentum": momentum, "epochs": epochs,
        "validation_split": validation_split, "loss": loss, "seed": seed}.items()
        if v is not None}
    if batch_size is not None:
        extra["batch_size"] = batch_size if batch_size == "full" else _int(batch_size)
    job = client().jobs.create(spec, dataset=dataset_id, layers=layers, optimizer=optimizer,
                               idempotency_key=idempotency_key, **extra)
    _finish(job, quiet, as_json_, wait)


@click.command("continue")
@click.argument("model_id")
@click.option("--epochs", "-e", type=int, help="Epochs to train after the model's.")
@click.option("--dataset", "dataset_id", help="Another dataset of the same width (default: the "
              "model's).")
@click.option("--optimizer", "-o", help="A new optimiser (its state then starts fresh).")
@click.option("--lr", "learning_rate", type=float, help="A new learning rate.")
@click.option("--idempotency-key", help="Send this key (a retry with it returns the same job).")
@click.option("--wait", "-w", is_flag=True, help="Follow the job until it ends.")
@quiet_option
@json_option
def continue_(model_id: str, epochs: int | None, dataset_id: str | None, optimizer: str | None,
              learning_rate: float | None, idempotency_key: str | None, wait: bool,
              quiet: bool, as_json_: bool) -> None:
    """Train MODEL_ID further from its final training state: the same spec, --epochs more.
    Nothing changed: 100 epochs then 100 more are 200 in one job, bit for bit.

    \b
    Example:
      bp continue mdl_0123 --epochs 100 --wait
    """
    extra: dict[str, Any] = {k: v for k, v in {"epochs": epochs,
                                                "learning_rate": learning_rate}.items()
                             if v is not None}
    job = client().jobs.create(continue_from=model_id, dataset=dataset_id, optimizer=optimizer,
                               idempotency_key=idempotency_key, **extra)
    _finish(job, quiet, as_json_, wait)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'full'",
                                 param_hint="--batch-size") from None


@click.group()
def jobs() -> None:
    """Follow and manage training jobs.

    \b
    Example:
      bp jobs list --status running
      bp jobs watch job_0123
    """


@jobs.command("list")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed",
                                             "cancelled"]))
@click.option("--limit", type=int, default=50, show_default=True,
              help="At most this many (0: all).")
@json_option
def list_(status: str | None, limit: int, as_json_: bool) -> None:
    """List jobs, newest first.

    \b
    Example:
      bp jobs list --status succeeded --json
    """
    items = []
    for job in client().jobs.list(status):
        items.append(job)
        if limit and len(items) >= limit:
            break
    if as_json_:
        as_json([j.raw for j in items])
        return
    table(["id", "status", "epoch", "loss", "val_loss", "model_id", "created_at"],
          [[j.id, j.status, f"{j.progress.get('epoch', 0)}/{j.progress.get('epochs', '?')}",
            (j.metrics or {}).get("loss"), (j.metrics or {}).get("val_loss"), j.model_id,
            j.created_at] for j in items])


@jobs.command("show")
@click.argument("job_id")
@click.option("--plot/--no-plot", default=None,
              help="Draw the loss curve (needs the 'plot' extra; default: on a terminal).")
@field_option
@json_option
def show_(job_id: str, plot: bool | None, field: str | None, as_json_: bool) -> None:
    """Show a job: status, progress, metrics, and the loss curve on a terminal.

    \b
    Example:
      bp jobs show job_0123
      MODEL=$(bp jobs show job_0123 --field model_id)
    """
    job = client().jobs.get(job_id)
    show(job.raw, field, as_json_, lambda: _people(job))
    if field is None and not as_json_ and plot is not False:
        loss_curve(job, explicit=bool(plot))


@jobs.command()
@click.argument("job_id")
@quiet_option
@json_option
def watch(job_id: str, quiet: bool, as_json_: bool) -> None:
    """Follow a job with a progress bar until it ends; exit 1 if it failed or was cancelled.
    With -q prints the model id.

    \b
    Example:
      bp jobs watch job_0123 && echo trained
    """
    _finish(client().jobs.get(job_id), quiet, as_json_, wait=True)


@jobs.command()
@click.argument("job_id")
@json_option
def cancel(job_id: str, as_json_: bool) -> None:
    """Cancel a job: a queued one never starts, a running one stops within an epoch.

    \b
    Example:
      bp jobs cancel job_0123
    """
    job = client().jobs.cancel(job_id)
    if as_json_:
        as_json(job.raw)
    else:
        click.echo(f"cancel requested for {job.id} (status {job.status})")


@jobs.command()
@click.argument("job_id")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every epoch).")
@json_option
def history(job_id: str, as_csv: bool, as_json_: bool) -> None:
    """The per-epoch history of a job (every page).

    \b
    Example:
      bp jobs history job_0123 --csv > history.csv
    """
    rows = list(client().jobs.history(job_id))
    cols = ["epoch", "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate", "seconds"]
    if as_json_:
        as_json(rows)
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(cols)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else r[c] for c in cols])
    else:
        table(cols, [[r.get(c) for c in cols] for r in rows])
