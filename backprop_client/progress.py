"""A one-line progress bar for a training job: epoch, loss, val_loss and ETA, redrawn in place on
a terminal, or a line per tenth of the run otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

WIDTH = 24


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "-"


class ProgressBar:
    def __init__(self, job_id: str, epochs: int | None, stream: TextIO | None = None) -> None:
        self.job_id, self.epochs = job_id, epochs or 0
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.status = "queued"
        self.epoch, self.loss, self.val_loss = 0, None, None
        self.eta: float | None = None
        self._started: tuple[float, int] | None = None  # (time, epoch) when epochs began coming
        self._printed_tenth = -1
        self._last = ""  # the last line written (not on a terminal)
        self._width = 0

    def update(self, *, epoch: int | None = None, epochs: int | None = None,
               loss: Any = None, val_loss: Any = None, eta: float | None = None,
               status: str | None = None) -> None:
        now = time.monotonic()
        if epochs:
            self.epochs = int(epochs)
        if epoch is not None and epoch != self.epoch:
            if self._started is None:
                self._started = (now, int(epoch))
            self.epoch = int(epoch)
            self.eta = eta if eta is not None else self._eta(now)
        elif eta is not None:
            self.eta = eta
        if loss is not None:
            self.loss = loss
        if val_loss is not None:
            self.val_loss = val_loss
        if status:
            self.status = status
        elif self.status == "queued" and self.epoch > 0:
            self.status = "running"  # an epoch was trained: it started (the stream replays
            # the history before it says so with a status event)
        self.draw()

    def _eta(self, now: float) -> float | None:
        if self._started is None or not self.epochs:
            return None
        t0, e0 = self._started
        done = self.epoch - e0
        return (now - t0) / done * (self.epochs - self.epoch) if done > 0 else None

    def line(self) -> str:
        frac = self.epoch / self.epochs if self.epochs else 0.0
        filled = int(frac * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        parts = [f"{self.job_id} {self.status:<9}", f"epoch {self.epoch}/{self.epochs or '?'}",
                 f"[{bar}] {frac:4.0%}", f"loss {_num(self.loss)}"]
        if self.val_loss is not None:
            parts.append(f"val_loss {_num(self.val_loss)}")
        if self.status in ("queued", "running"):
            parts.append(f"ETA {duration(self.eta)}")
        return "  ".join(parts)

    def draw(self) -> None:
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
            self.stream.flush()
            return
        tenth = int(10 * self.epoch / self.epochs) if self.epochs else 0
        if tenth > self._printed_tenth:
            self._printed_tenth = tenth
            self._write_line(text)

    def _write_line(self, text: str) -> None:
        if text != self._last:
            self._last = text
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line().ljust(self._width) + "\n")
            self.stream.flush()
        else:
            self._write_line(self.line())
