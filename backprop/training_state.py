"""A trainer's state as bytes: the checkpoint a resumed run restores bit for bit, and the final
state a continued run carries on from.

The state is the parameters, the optimiser's and the schedule's state, the random generator,
the epoch counter, the early-stopping counters with the best weights and row, and a stop
already decided; not the history, so its size does not grow with the epochs done.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import serialize
from .network import Network
from .optimizers import Optimizer
from .schedules import Schedule

CHECKPOINT_FORMAT = "backprop.checkpoint/2"
CHECKPOINT_FORMATS = ("backprop.checkpoint/1", CHECKPOINT_FORMAT)  # /1 carried the history too


def state_epoch(data: bytes) -> int:
    """The epochs done by the run whose ``checkpoint`` or ``final_state`` ``data`` is."""
    _, meta = serialize.load(data, lambda meta: {})
    if meta.get("format") not in CHECKPOINT_FORMATS:
        raise ValueError(f"not a training state (format {meta.get('format')!r})")
    return int(meta["epoch"])


class TrainingState:
    """Export and import of ``Trainer``'s state (a mixin: the attributes are the trainer's)."""

    network: Network
    config: dict[str, Any]
    optimizer: Optimizer
    schedule: Schedule
    rng: np.random.Generator
    epoch: int
    history: list[dict[str, Any]]
    best_loss: float
    best_params: np.ndarray | None
    best_row: dict[str, Any] | None
    last_row: dict[str, Any] | None
    last_params: np.ndarray | None
    wait: int
    stop_reason: str | None
    _stop_decided: str | None

    def checkpoint(self) -> bytes:
        """The training state as ``.npz`` bytes (take it between epochs). Its size does not
        grow with the epochs done: the history is not in it."""
        return self._state(self.network.params)

    def final_state(self) -> bytes:
        """The state a finished ``fit`` reached, to continue from (``carry``): the last
        epoch's weights, even where the network now holds the best ones."""
        return self._state(self.network.params if self.last_params is None
                           else self.last_params)

    def _state(self, params: np.ndarray) -> bytes:
        opt_state = self.optimizer.get_state()
        arrays = {"params": params}
        arrays.update({f"opt_{k}": v for k, v in opt_state.items() if isinstance(v, np.ndarray)})
        if self.best_params is not None:
            arrays["best_params"] = self.best_params
        meta = {
            "format": CHECKPOINT_FORMAT,
            "network": self.network.spec,
            "dtype": self.network.dtype.name,
            "training": self.config,
            "epoch": self.epoch,
            "best_row": self.best_row,
            "last_row": self.last_row,
            "stop_decided": self.stop_reason if self.stop_reason != "callback" else None,
            "optimizer": {k: v for k, v in opt_state.items() if not isinstance(v, np.ndarray)},
            "optimizer_arrays": sorted(k for k, v in opt_state.items()
                                       if isinstance(v, np.ndarray)),
            "schedule": self.schedule.get_state(),
            "rng": self.rng.bit_generator.state,
            "best_loss": self.best_loss,
            "wait": self.wait,
            "has_best": self.best_params is not None,
        }
        return serialize.dump(arrays, meta)

    def restore(self, data: bytes) -> None:
        """Load a ``checkpoint()`` taken from a trainer with the same network and spec."""
        arrays, meta = self._load(data)
        if meta["training"] != self.config:
            raise ValueError("the checkpoint was taken with a different training spec")
        self._apply(arrays, meta, optimizer=True, schedule=True, rng=True, best=True)
        if meta["format"] == CHECKPOINT_FORMAT:
            self.best_row, self.last_row = meta["best_row"], meta["last_row"]
            self._stop_decided = meta["stop_decided"]
        else:  # /1: the rows came with it; its stop (if any) was decided again by the loop
            rows = meta["history"]
            self.last_row = rows[-1] if rows else None
            key = "val_loss" if rows and rows[-1]["val_loss"] is not None else "loss"
            self.best_row = next((r for r in rows if r[key] == self.best_loss), None) \
                if self.best_params is not None else None

    def carry(self, data: bytes, *, same_data: bool = True) -> dict[str, Any]:
        """Go on from another run's ``final_state`` with this trainer's spec: its weights and
        epoch counter always; its optimiser state, schedule state and random generator where
        this spec's optimiser, schedule and seed are the same as that run's; its best-so-far
        (early stopping, best weights) where they are and ``same_data``. A run that stopped
        early goes on with a fresh patience. Returns what was kept, by name."""
        arrays, meta = self._load(data)
        old, new = meta["training"], self.config
        if meta["format"] != CHECKPOINT_FORMAT:
            raise ValueError("the training state is of an older format")
        kept = {
            "optimizer": old["optimizer"] == new["optimizer"],
            "schedule": old["optimizer"] == new["optimizer"]
            and old["lr_schedule"] == new["lr_schedule"],
            "rng": old["seed"] == new["seed"],
            "best": same_data and old["early_stopping"] == new["early_stopping"]
            and old["validation_split"] == new["validation_split"]
            and old["seed"] == new["seed"] and old["loss"] == new["loss"],
        }
        self._apply(arrays, meta, **kept)
        self.last_row = meta["last_row"]
        if kept["best"]:
            self.best_row = meta["best_row"]
            if meta["stop_decided"] == "early_stopping":
                self.wait = 0
        return kept

    def _load(self, data: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        net = self.network
        shape, dtypes = (net.n_params,), (net.dtype.name,)

        def expect(meta: dict[str, Any]) -> serialize.Expected:
            if meta.get("format") not in CHECKPOINT_FORMATS:
                raise ValueError(f"not a training checkpoint (format {meta.get('format')!r})")
            if meta.get("network") != net.spec or meta.get("dtype") != net.dtype.name:
                raise ValueError("the checkpoint was taken from a different network")
            names = ["params", *(f"opt_{k}" for k in meta.get("optimizer_arrays", []))]
            if meta.get("has_best"):
                names.append("best_params")
            return {name: (shape, dtypes) for name in names}

        return serialize.load(data, expect)

    def _apply(self, arrays: dict[str, np.ndarray], meta: dict[str, Any], *, optimizer: bool,
               schedule: bool, rng: bool, best: bool) -> None:
        np.copyto(self.network.params, arrays["params"])
        if optimizer:
            opt_state = dict(meta["optimizer"])
            opt_state.update({k[4:]: v for k, v in arrays.items() if k.startswith("opt_")})
            self.optimizer.set_state(opt_state)
        if schedule:
            self.schedule.set_state(meta["schedule"])
        if rng:
            self.rng.bit_generator.state = meta["rng"]
        self.epoch = int(meta["epoch"])
        self.history = []
        if best:
            self.best_loss = float(meta["best_loss"])
            self.best_params = arrays.get("best_params")
            self.wait = int(meta["wait"])
