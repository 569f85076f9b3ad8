"""The training callback's queue: an epoch's diagnostics are queued before its history row, so
the writer never commits the row without them (event streams send both from the row's poll)."""

from __future__ import annotations

from typing import Any

from service.config import Settings
from workers.claim import Claim
from workers.recorder import Diagnostics, Recorder


def test_diagnostics_are_queued_before_their_row() -> None:
    import backprop

    claim = Claim("job_x", 1, {"training": {"epochs": 3}}, "ds_x", None, 0)
    rec = Recorder(claim, Settings(checkpoint_every_seconds=1e9))
    layers = [{"layer": 0, "activation": "tanh"}]
    row: dict[str, Any] = {"epoch": 1, "seconds": 0.01}
    plain: dict[str, Any] = {"epoch": 2, "seconds": 0.01}
    rec(backprop.Progress(1, 3, None, 1, row, None, layers))  # type: ignore[arg-type]
    rec(backprop.Progress(2, 3, None, 1, plain, None))  # type: ignore[arg-type]
    items = list(rec.items)
    assert isinstance(items[0], Diagnostics) and items[0].epoch == 1
    assert items[0].layers == layers
    assert items[1:] == [row, plain]
