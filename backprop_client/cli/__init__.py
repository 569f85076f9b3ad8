"""``bp``: the backprop service from the command line, a thin layer over ``backprop_client``.

Each command parses its options, calls one client method and prints a table (or ``--json``).
A problem answer is printed on stderr (title, detail, field errors) with exit code 1.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Any

import click

from .. import __version__
from ..client import Client
from ..errors import BackpropError
from .datasets import datasets
from .jobs import continue_, jobs, train
from .models import models
from .output import problem


class Context:
    """The client, made on first use (``--help`` needs no service)."""

    def __init__(self, url: str | None, api_key: str | None, timeout: float) -> None:
        self.url, self.api_key, self.timeout = url, api_key, timeout
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.url, self.api_key, timeout=self.timeout)
        return self._client


class Problem(click.ClickException):
    """A client error as a CLI failure: its message on stderr, exit code 1."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(str(exc))
        self.exc = exc

    def show(self, file: IO[Any] | None = None) -> None:
        if isinstance(self.exc, BackpropError):
            problem(self.exc)
        else:
            click.echo(f"error: {self.exc}", err=True)


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # `bp ... | head`: the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except (BackpropError, ValueError, OSError) as exc:  # OSError: a file, not the network
            raise Problem(exc) from exc


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="BACKPROP_URL", default=None, metavar="URL",
              help="The service (default $BACKPROP_URL, else http://127.0.0.1:8000).")
@click.option("--api-key", envvar="BACKPROP_API_KEY", default=None, metavar="KEY",
              help="API key (default $BACKPROP_API_KEY).")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds per HTTP request.")
@click.version_option(__version__, prog_name="bp")
@click.pass_context
def cli(ctx: click.Context, url: str | None, api_key: str | None, timeout: float) -> None:
    """Train neural networks on a backprop service and use them.

    \b
    Example:
      export BACKPROP_API_KEY=$(cat var/api-key.txt)
      DS=$(bp datasets upload iris.csv --target species -q)
      bp train "$DS" --layers 16:tanh,3:softmax --epochs 200 --wait
    """
    ctx.obj = Context(url, api_key, timeout)


cli.add_command(datasets)
cli.add_command(train)
cli.add_command(continue_)
cli.add_command(jobs)
cli.add_command(models)


def main() -> None:
    """The ``bp`` entry point."""
    cli(prog_name="bp")
