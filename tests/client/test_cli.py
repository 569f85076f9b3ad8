"""The ``bp`` command line against a real stack: upload, train --wait, history --csv, predict
from a CSV and from JSON on stdin, download and predict locally with the same numbers, cancel,
errors on stderr with exit code 1, --help with an example everywhere; and the installed entry
point, interrupted with Ctrl-C while it waits."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner, Result

import backprop
from backprop_client import Client
from backprop_client.cli import cli
from tests.e2e.conftest import Stack

from .conftest import three_classes, write_csv


def bp(stack: Stack, *args: str, input: str | None = None) -> Result:
    env = {"BACKPROP_URL": stack.base, "BACKPROP_API_KEY": stack.key}
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def test_upload_train_history_predict_download(stack: Stack, tmp_path: Path) -> None:
    X, labels = three_classes()
    path = write_csv(tmp_path / "iris.csv", X, labels)
    ds = ok(bp(stack, "datasets", "upload", str(path), "--target", "species", "-q")).strip()
    assert ds.startswith("ds_")
    assert "classification" in ok(bp(stack, "datasets", "show", ds))
    assert ds in ok(bp(stack, "datasets", "list"))

    train = bp(stack, "train", ds, "--layers", "8:tanh,3:softmax", "--optimizer", "adam",
               "--lr", "0.05", "--epochs", "25", "--batch-size", "16",
               "--validation-split", "0.2", "--seed", "3", "--wait", "-q")
    model = ok(train).strip()
    assert model.startswith("mdl_") and "epoch 25/25" in train.stderr
    job = json.loads(ok(bp(stack, "models", "show", model, "--json")))["job_id"]
    assert ok(bp(stack, "jobs", "show", job, "--field", "status")).strip() == "succeeded"
    assert ok(bp(stack, "jobs", "show", job, "--field", "model_id")).strip() == model
    assert "succeeded" in ok(bp(stack, "jobs", "show", job, "--no-plot"))
    assert job in ok(bp(stack, "jobs", "list", "--status", "succeeded"))

    rows = list(csv.DictReader(io.StringIO(ok(bp(stack, "jobs", "history", job, "--csv")))))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 26))
    assert rows[0]["val_loss"] and float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert len(json.loads(ok(bp(stack, "jobs", "history", job, "--json")))) == 25

    # the training CSV as it is (the target column is left out by name), and JSON on stdin
    table = ok(bp(stack, "models", "predict", model, "--input", str(path)))
    assert table.splitlines()[0].split() == ["ROW", "LABEL", "SETOSA", "VERSICOLOR",
                                             "VIRGINICA"]
    assert len(table.splitlines()) == 1 + len(X)
    out = json.loads(ok(bp(stack, "models", "predict", model, "--json",
                           input=json.dumps(X[:5].tolist()))))
    assert set(out) == {"outputs", "labels", "probabilities"} and len(out["labels"]) == 5

    target = tmp_path / "m.npz"
    assert ok(bp(stack, "models", "download", model, "-o", str(target))).strip() == str(target)
    local = backprop.Model.load(target)
    assert np.array_equal(local.predict(X[:5]), np.asarray(out["probabilities"]))
    assert local.predict_labels(X[:5]) == out["labels"]
    assert model in ok(bp(stack, "models", "list"))

    # train it 5 epochs further with a smaller learning rate (Adam kept, its state fresh)
    more = bp(stack, "continue", model, "--epochs", "5", "--lr", "0.01", "--wait", "-q")
    again = json.loads(ok(bp(stack, "models", "show", ok(more).strip(), "--json")))
    assert again["parent_model_id"] == model and again["epochs_trained"] == 30
    spec = json.loads(ok(bp(stack, "jobs", "show", again["job_id"], "--json")))["spec"]
    assert spec["training"]["optimizer"]["name"] == "adam"
    assert spec["continue_from"]["optimizer_state"] == "fresh"
    rows = json.loads(ok(bp(stack, "jobs", "history", again["job_id"], "--json")))
    assert [r["epoch"] for r in rows] == [26, 27, 28, 29, 30]


def test_errors_go_to_stderr_with_exit_code_1(stack: Stack, tmp_path: Path) -> None:
    missing = bp(stack, "jobs", "show", "job_nope")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: 404 Not Found: no job with id 'job_nope'")
    ds = Client(stack.base, stack.key).datasets.create(*three_classes(30), name="cli-errors")
    bad = bp(stack, "train", ds.id, "--layers", "8:tanh,2", "--epochs", "5")
    assert bad.exit_code == 1 and "422" in bad.stderr
    assert "network.layers" in bad.stderr  # the field, from the problem's errors
    unauth = CliRunner().invoke(cli, ["--url", stack.base, "--api-key", "bp_wrong",
                                      "datasets", "list"])
    assert unauth.exit_code == 1 and "401" in unauth.stderr
    usage = bp(stack, "train", ds.id)
    assert usage.exit_code == 2 and "--layers" in usage.stderr
    (tmp_path / "spec.json").write_text(json.dumps({"network": {"layers": [{"units": 3}]},
                                                    "training": {"epochs": 100000,
                                                                 "batch_size": 1}}))
    job = ok(bp(stack, "train", ds.id, "--spec", str(tmp_path / "spec.json"), "-q")).strip()
    assert "cancel requested" in ok(bp(stack, "jobs", "cancel", job))
    watched = bp(stack, "jobs", "watch", job)
    assert watched.exit_code == 1 and "cancelled" in watched.stderr
    again = bp(stack, "jobs", "cancel", job)
    assert again.exit_code == 1 and "409" in again.stderr
    ok(bp(stack, "datasets", "delete", ds.id))


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("command", _commands(cli), ids=lambda c: " ".join(c) or "bp")
def test_every_command_has_help_with_an_example(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.stdout


def test_ctrl_c_while_waiting_leaves_the_job_running(stack: Stack) -> None:
    """Not on a terminal there is no one to ask: the job goes on, and bp says how to follow it."""
    client = Client(stack.base, stack.key)
    ds = client.datasets.create(*three_classes(60), name="ctrl-c")
    job = client.jobs.create(dataset=ds, layers="32:tanh,3", epochs=100000, batch_size=1)
    env = {**os.environ, "BACKPROP_URL": stack.base, "BACKPROP_API_KEY": stack.key}
    exe = Path(sys.executable).with_name("bp")
    proc = subprocess.Popen([str(exe), "jobs", "watch", job.id], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 60)
        assert ready, "bp printed no progress line"
        first = proc.stderr.readline()  # the bar's first line: bp is waiting now
        assert job.id in first, first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"bp jobs watch {job.id}" in err
    assert client.jobs.get(job.id).status in ("queued", "running")  # not cancelled
    client.jobs.cancel(job.id)
