"""The training loop: epochs of (shuffled) batches, metrics, stopping rules, checkpoints.

``Trainer.fit`` does no I/O: randomness comes only from the ``np.random.Generator`` it holds,
progress and cancellation only through a callback. Its training state (parameters, optimiser,
schedule, RNG, epoch, early-stopping counters, best weights and best row, a stop already
decided) exports to bytes with ``checkpoint()`` and comes back with ``restore()``, so that a run
resumed from a checkpoint taken at an epoch's end is bit-for-bit the run that was never
interrupted. The history is not in it (the caller has the rows it was given epoch by epoch), so a
checkpoint costs the same at epoch 10 and at epoch 100,000; after ``restore()`` the history holds
the epochs run since. ``final_state()`` and ``carry()`` continue a finished run in another
(``backprop.training_state``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import kernels
from .diagnostics import Probe
from .errors import DivergenceError, divergence_hint, what_diverged
from .losses import loss as get_loss
from .network import Network
from .optimizers import optimizer_from_config
from .schedules import Schedule, schedule_from_config
from .training_state import TrainingState

EPOCH_ROWS_PER_CALL = 1 << 18  # rows a multi-epoch kernel call covers (at most 4096 epochs)


@dataclass
class Progress:
    """What a callback sees. ``record`` is the finished epoch's history row, or ``None`` when
    the call comes between batches (then ``batch`` of ``batches`` is set). ``rows`` are the
    history rows of every epoch finished since the last call: ``[record]`` after one epoch,
    none between batches, and the whole group (``record`` the last) when a multi-epoch kernel
    ran several epochs in one call (``callback_seconds``)."""

    epoch: int  # epochs completed so far
    epochs: int
    batch: int | None
    batches: int
    record: dict[str, Any] | None
    trainer: Trainer
    diagnostics: list[dict[str, Any]] | None = None  # per layer, on diagnostic epochs
    rows: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = [self.record] if self.record is not None else []


    def checkpoint(self) -> bytes:
        return self.trainer.checkpoint()


Callback = Callable[[Progress], bool | None]
"""Called after every epoch (and every ``callback_every`` batches); return ``True`` to stop.
With ``callback_seconds``, a kernel that runs many epochs per call (the compiled one) may call it
once per group of epochs instead, about that many seconds of training apart; ``progress.rows``
then holds the group's rows."""


class Trainer(TrainingState):
    """Trains ``network`` with a resolved ``training`` spec (see ``backprop.spec``).

    ``classification`` adds accuracy to the history (targets one-hot, or one 0/1 column).
    """

    def __init__(self, network: Network, training: dict[str, Any], *,
                 classification: bool = False, rng: np.random.Generator | None = None) -> None:
        self.network = network
        self.config = training
        self.classification = classification
        self.loss = get_loss(training["loss"])
        self.optimizer = optimizer_from_config(training["optimizer"])
        self.schedule = schedule_from_config(self.optimizer.learning_rate,
                                             training["lr_schedule"])
        self.rng = rng if rng is not None else np.random.default_rng(training["seed"])
        self.epoch = 0
        self._last_good: np.ndarray | None = None  # the weights at the start of this epoch
        self.history: list[dict[str, Any]] = []
        self.best_loss = math.inf
        self.best_params: np.ndarray | None = None
        self.best_row: dict[str, Any] | None = None  # the history row of the best epoch
        self.last_params: np.ndarray | None = None  # the last weights, once the best replace them
        self.last_row: dict[str, Any] | None = None  # the last epoch's row (kept across resume)
        self.wait = 0
        self.stop_reason: str | None = None
        self.diagnostics: list[dict[str, Any]] = []  # {"epoch", "layers"}; not checkpointed
        self.kernel: Any = None  # made on the first fit (``auto`` looks at the rows)
        self._stop_decided: str | None = None  # restored: the checkpointed epoch ended the run

    # -- the loop ----------------------------------------------------------------------------

    def fit(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray | None = None,
            Y_val: np.ndarray | None = None, *, callback: Callback | None = None,
            callback_every: int | None = None, callback_seconds: float | None = None,
            ) -> list[dict[str, Any]]:
        """Train until ``epochs`` (counting epochs already done), a stopping rule, or the
        callback asks to stop. ``X`` ``(n_samples, n_inputs)``, ``Y`` ``(n_samples, n_outputs)``.
        ``callback_seconds`` lets a multi-epoch kernel call back once per group of epochs of
        about that much training (see ``Callback``) rather than after every epoch.

        Returns the history (one dict per epoch). Raises ``DivergenceError`` on a non-finite
        loss or weight, leaving the parameters as they were at the start of that epoch.
        """
        # Overflow is what divergence looks like: it is detected at the end of the epoch and
        # raised as DivergenceError, so NumPy's floating-point warnings (errors under -W error)
        # must not preempt it.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                return self._fit(X, Y, X_val, Y_val, callback, callback_every,
                                 callback_seconds)
            except (OverflowError, FloatingPointError) as exc:  # a Python float, not an array
                if self._last_good is not None:
                    np.copyto(self.network.params, self._last_good)
                hint = divergence_hint(self.config["optimizer"])
                raise DivergenceError(self.epoch + 1, math.nan, hint,
                                      f"a number overflowed ({exc})") from exc

    def _fit(self, X: np.ndarray, Y: np.ndarray, X_val: np.ndarray | None,
             Y_val: np.ndarray | None, callback: Callback | None,
             callback_every: int | None, callback_seconds: float | None,
             ) -> list[dict[str, Any]]:
        net, cfg, loss, opt = self.network, self.config, self.loss, self.optimizer
        dtype = net.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        n = X.shape[0]
        if n == 0:
            raise ValueError("no training rows")
        if Y.shape != (n, net.n_outputs):
            raise ValueError(f"targets must have shape ({n}, {net.n_outputs}), got {Y.shape}")
        has_val = X_val is not None and Y_val is not None and len(X_val) > 0
        if has_val:
            X_val = np.ascontiguousarray(X_val, dtype=dtype)
            Y_val = np.ascontiguousarray(Y_val, dtype=dtype)
        labels = self._labels(Y)
        val_labels = self._labels(Y_val) if has_val else None

        bs = n if cfg["batch_size"] == "full" else min(cfg["batch_size"], n)
        batches = -(-n // bs)
        shuffle = cfg["shuffle"] and batches > 1
        if self.kernel is None:
            name = kernels.choose(cfg.get("kernel", "numpy"), net.n_weights, cfg["batch_size"], n)
            self.kernel = kernels.make(name, net, cfg["loss"], opt, cfg["l2"])
        run = self.kernel.run
        params, l2 = net.params, cfg["l2"]
        last_good = self._last_good = np.empty_like(params)
        es, target = cfg["early_stopping"], cfg["target_loss"]
        adaptive = opt.full_batch_only  # rprop: no learning-rate schedule
        every = callback_every if callback is not None and callback_every else 0
        binary = net.n_outputs == 1
        self.stop_reason, decided, self._stop_decided = None, self._stop_decided, None
        diag_every = (cfg.get("diagnostics") or {}).get("every", 0)
        before = np.empty_like(params) if diag_every else None
        probe = Probe(net, X, Y, loss, l2) if diag_every else None
        if (callback is None or (callback_seconds and not every)) and es is None \
                and target is None and not has_val and not diag_every and decided is None \
                and hasattr(self.kernel, "run_epochs") \
                and type(self.schedule).observe is Schedule.observe:
            return self._fit_epochs(X, Y, labels, bs, shuffle, callback, callback_seconds)

        for epoch in range(self.epoch if decided is None else cfg["epochs"], cfg["epochs"]):
            t0 = time.perf_counter()
            if not adaptive:
                opt.learning_rate = self.schedule.rate(epoch)
            np.copyto(last_good, params)
            perm = self.rng.permutation(n) if shuffle else None
            total, correct, done = 0.0, 0, 0
            diag = diag_every and (epoch + 1) % diag_every == 0
            while done < batches:
                upto = min(batches, done + every) if every else batches
                if diag and upto == batches:  # the parameters before the epoch's last step
                    if done < batches - 1:
                        total, correct = run(X, Y, labels, perm, done, batches - 1, bs, total,
                                             correct)
                        done = batches - 1
                    np.copyto(before, params)
                total, correct = run(X, Y, labels, perm, done, upto, bs, total, correct)
                done = upto
                if every and done < batches and callback(
                        Progress(epoch, cfg["epochs"], done, batches, None, self)):
                    self.stop_reason = "callback"
                    return self.history
            train_loss = total / n
            # Any NaN/inf weight makes the squared norm non-finite (so does |w| > ~1e19, which
            # is divergence too); one BLAS call instead of an isfinite pass and a reduction.
            if not (math.isfinite(train_loss) and math.isfinite(float(np.dot(params, params)))):
                what = what_diverged(train_loss, params, opt.learning_rate)
                np.copyto(params, last_good)
                hint = divergence_hint(cfg["optimizer"])
                raise DivergenceError(epoch + 1, train_loss, hint, what)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": train_loss,
                "val_loss": None,
                "accuracy": correct / n if labels is not None else None,
                "val_accuracy": None,
                "learning_rate": opt.learning_rate,
            }
            if has_val:
                out = net.forward(X_val)
                val_loss = loss.value(out, Y_val)
                if l2:
                    w = params[:net.n_weights]
                    val_loss += 0.5 * l2 * float(np.vdot(w, w))
                record["val_loss"] = val_loss if math.isfinite(val_loss) else None
                if val_labels is not None:
                    guess = (out[:, 0] > 0.5) if binary else out.argmax(axis=1)
                    record["val_accuracy"] = float(np.mean(guess == val_labels))
            record["seconds"] = time.perf_counter() - t0
            self.history.append(record)
            self.last_row = record
            self.epoch = epoch + 1
            layers = probe(net, before) if probe and diag else None
            if layers is not None:
                self.diagnostics.append({"epoch": self.epoch, "layers": layers})
            monitored = record["val_loss"] if has_val and record["val_loss"] is not None \
                else train_loss
            if not adaptive:
                self.schedule.observe(monitored)
            # The best weights so far: what early stopping restores, and what a run stopped
            # from outside (a cancel) keeps when it has validation rows to tell "best" by.
            if es is not None or has_val:
                if monitored < self.best_loss - (es["min_delta"] if es else 0.0):
                    self.best_loss, self.wait, self.best_row = monitored, 0, record
                    if self.best_params is None:
                        self.best_params = params.copy()
                    else:
                        np.copyto(self.best_params, params)
                elif es is not None:
                    self.wait += 1
                    if self.wait >= es["patience"]:
                        self.stop_reason = "early_stopping"
            if target is not None and train_loss <= target:
                self.stop_reason = "target_loss"
            if callback is not None and callback(
                    Progress(self.epoch, cfg["epochs"], None, batches, record, self, layers)):
                self.stop_reason = "callback"
                return self.history
            if self.stop_reason:
                break
        self.stop_reason = self.stop_reason or decided or "epochs"
        if es is not None and self.best_params is not None:
            self.keep_best()
        return self.history

    def keep_best(self) -> None:
        """Put the best weights so far in the network (the last ones stay in ``final_state``)."""
        if self.best_params is None:
            return
        if self.last_params is None:
            self.last_params = self.network.params.copy()
        else:
            np.copyto(self.last_params, self.network.params)
        np.copyto(self.network.params, self.best_params)

    def _fit_epochs(self, X: np.ndarray, Y: np.ndarray, labels: np.ndarray | None, bs: int,
                    shuffle: bool, callback: Callback | None = None,
                    callback_seconds: float | None = None) -> list[dict[str, Any]]:
        """Many epochs per kernel call, for a kernel that can (the compiled one) when nothing
        runs between epochs: no validation, early stopping, target loss or schedule that
        watches the loss, and no callback or one that takes groups of epochs. The same
        arithmetic, permutations and history as one epoch at a time; a callback is called
        after each group, with the trainer's state at that group's last epoch. Groups start
        at one epoch and are sized from the last one's time to ``callback_seconds``."""
        cfg, opt, n = self.config, self.optimizer, X.shape[0]
        per_call = max(1, min(4096, EPOCH_ROWS_PER_CALL // n))
        batches = -(-n // bs)
        size = per_call if callback is None else 1
        while self.epoch < cfg["epochs"]:
            first = self.epoch
            count = min(cfg["epochs"] - first, size)
            if opt.full_batch_only:  # rprop: no learning-rate schedule
                rates = [opt.learning_rate] * count
            else:
                rates = [self.schedule.rate(e) for e in range(first, first + count)]
            state = self.rng.bit_generator.state
            perms = np.stack([self.rng.permutation(n) for _ in range(count)]) if shuffle \
                else None
            t0 = time.perf_counter()
            totals, corrects, done = self.kernel.run_epochs(X, Y, labels, perms, rates, bs)
            self._last_good = self.kernel.last_good
            elapsed = time.perf_counter() - t0
            seconds = elapsed / max(done, 1)
            rows = [{"epoch": first + e + 1,
                     "loss": float(totals[e]) / n,
                     "val_loss": None,
                     "accuracy": int(corrects[e]) / n if labels is not None else None,
                     "val_accuracy": None,
                     "learning_rate": rates[e],
                     "seconds": seconds} for e in range(done)]
            self.history.extend(rows)
            if done:
                self.last_row = rows[-1]  # what best_record and checkpoints report
            self.epoch = first + done
            opt.learning_rate = rates[min(done, count - 1)]
            if done < count:  # diverged: the state as after the last good epoch...
                if shuffle:
                    self.rng.bit_generator.state = state
                    for _ in range(done):
                        self.rng.permutation(n)
                loss = float(totals[done]) / n
                what = what_diverged(loss, self.network.params, rates[done])
                np.copyto(self.network.params, self.kernel.last_good)
                opt.learning_rate = rates[done - 1] if done else opt.learning_rate
                if callback is not None and rows:  # ...for the callback to see its rows
                    callback(Progress(self.epoch, cfg["epochs"], None, batches, rows[-1], self,
                                      None, rows))
                if shuffle:  # then the generator as if the diverged epoch had been the last
                    self.rng.permutation(n)
                opt.learning_rate = rates[done]
                raise DivergenceError(self.epoch + 1, loss, divergence_hint(cfg["optimizer"]),
                                      what)
            if callback is not None:
                if callback(Progress(self.epoch, cfg["epochs"], None, batches, rows[-1], self,
                                     None, rows)):
                    self.stop_reason = "callback"
                    return self.history
                size = max(1, min(per_call, int((callback_seconds or 0) * done / elapsed)
                                  if elapsed > 0 else per_call))
        self.stop_reason = "epochs"
        return self.history

    def _labels(self, Y: np.ndarray | None) -> np.ndarray | None:
        if not self.classification or Y is None:
            return None
        return (Y[:, 0] > 0.5) if Y.shape[1] == 1 else Y.argmax(axis=1)

    def best_record(self) -> dict[str, Any] | None:
        """The history row whose weights the network holds: the best epoch once ``keep_best``
        put its weights there (early stopping does), else the last."""
        if self.last_params is None or self.best_row is None:
            return self.last_row
        return self.best_row
