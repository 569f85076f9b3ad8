"""The loss curve of a job in the terminal, drawn by plotext when it is installed (the optional
``plot`` extra: ``pip install 'backprop-service[plot]'``)."""

from __future__ import annotations

import shutil
import sys
from typing import Any

import click

from ..resources import Job

INSTALL = "pip install 'backprop-service[plot]'  (or: pip install plotext)"


def loss_curve(job: Job, *, explicit: bool = False) -> None:
    """Draw train and validation loss by epoch below ``bp jobs show``: always when asked
    (``--plot``), else only on a terminal and when plotext is there."""
    if not explicit and not sys.stdout.isatty():
        return
    try:
        import plotext
    except ImportError:
        if explicit:
            click.echo(f"(no loss curve: plotext is not installed; {INSTALL})", err=True)
        return
    rows = list(job.history())
    if len(rows) < 2:
        return
    epochs = [r["epoch"] for r in rows]
    series = {"loss": [r["loss"] for r in rows]}
    if all(r.get("val_loss") is not None for r in rows):
        series["val_loss"] = [r["val_loss"] for r in rows]
    width = min(100, shutil.get_terminal_size((100, 24)).columns)
    click.echo()
    try:
        _draw(plotext, epochs, series, width, colorless=not sys.stdout.isatty())
    except Exception as exc:  # a plotext whose API we do not know: the table above stands
        click.echo(f"(no loss curve: plotext {getattr(plotext, '__version__', '?')} "
                   f"failed: {exc})", err=True)


def _draw(plt: Any, x: list[int], series: dict[str, list[float]], width: int,
          colorless: bool) -> None:
    title = "loss by epoch (" + ", ".join(series) + ")"
    if hasattr(plt, "plot"):  # plotext 5
        plt.clear_figure()
        for name, y in series.items():
            plt.plot(x, y, label=name)
        plt.title(title)
        plt.plotsize(width, 18)
        if colorless:
            plt.theme("clear")
        plt.show()
        return
    fig = plt.figure  # plotext 6
    fig.clear()
    for name, y in series.items():
        fig.draw(fig.signal(x, y).lines().label(name))
    fig.title(title)
    fig.plot_size(width, 18)
    fig.show(colorless=colorless)
