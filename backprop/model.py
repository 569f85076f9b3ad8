"""A trained model: spec + network + preprocessing, and ``train`` which makes one.

``train(spec, X, y)`` validates the spec against the data, splits off validation rows, fits the
standardiser on the training rows only, encodes class labels, initialises the network from the
seed, optionally gradient-checks it, trains, and returns a ``Model`` that predicts in the
original units and labels, and saves to / loads from a portable ``.npz`` (no pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from . import serialize
from .errors import GradientCheckError
from .evaluation import evaluate
from .findings import findings
from .gradcheck import gradient_check
from .network import Network
from .preprocessing import LabelEncoder, Standardizer
from .spec import TASKS, check_continuable, resolve_spec
from .training import Callback, Trainer
from .training_state import state_epoch

MODEL_FORMAT = "backprop.model/1"
GRADIENT_CHECK_ROWS = 16
GRADIENT_CHECK_TOLERANCE = 1e-5
GRADIENT_CHECK_PER_LAYER = 200


def infer_task(y: Any) -> str:
    """``classification`` for 1-D labels that are strings, integers or booleans, else
    ``regression``."""
    arr = np.asarray(y)
    if arr.ndim == 1 and arr.dtype.kind in "USObi":
        return "classification"
    return "regression"


class Model:
    """A network with its preprocessing; build one with ``train`` or ``Model.load``."""

    def __init__(self, spec: dict[str, Any], network: Network, *, task: str,
                 standardizer: Standardizer | None = None, classes: Sequence[Any] | None = None,
                 feature_names: Sequence[str] | None = None,
                 history: list[dict[str, Any]] | None = None,
                 metrics: dict[str, Any] | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.spec = spec
        self.network = network
        self.task = task
        self.standardizer = standardizer
        self.encoder = (LabelEncoder(classes, binary=network.n_outputs == 1)
                        if classes is not None else None)
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.history = history or []
        self.metrics = metrics or {}
        self.stop_reason: str | None = None
        self.gradient_check: dict[str, Any] | None = None  # the report, when checked
        self.diagnostics: list[dict[str, Any]] = []  # {"epoch", "layers"} per recorded epoch
        self.warnings: list[dict[str, Any]] = []  # findings (backprop.findings)
        self.evaluation: dict[str, Any] | None = None  # on the validation rows
        # What ``train(continue_from=...)`` goes on from (not in ``to_bytes``: it is not needed
        # to predict), the epochs it reached, and what a continued run kept of its source.
        self.training_state: bytes | None = None
        self.epochs_done = 0
        self.kept: dict[str, bool] | None = None

    @property
    def n_inputs(self) -> int:
        return self.network.n_inputs

    @property
    def classes(self) -> list[Any] | None:
        return self.encoder.classes if self.encoder is not None else None

    @property
    def n_outputs(self) -> int:
        return len(self.encoder.classes) if self.encoder is not None else self.network.n_outputs

    # -- predicting ----------------------------------------------------------------------------

    def _inputs(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1 and X.size == self.n_inputs:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"inputs must have shape (n_samples, {self.n_inputs}), got {X.shape}")
        if self.standardizer is not None:
            return self.standardizer.transform(X, self.network.dtype)
        return X.astype(self.network.dtype, copy=False)

    def predict(self, X: Any) -> np.ndarray:
        """Outputs ``(n_samples, n_outputs)``: values for regression, class probabilities for
        classification."""
        out = self.network.forward(self._inputs(X))
        return self.encoder.probabilities(out) if self.encoder is not None else out

    def predict_labels(self, X: Any) -> list[Any]:
        """The most probable class of each row (classification only)."""
        if self.encoder is None:
            raise ValueError("predict_labels needs a classification model")
        return self.encoder.decode(self.predict(X))

    # -- saving --------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The model as a portable ``.npz``: ``params`` (flat, weights then biases), ``mean``
        and ``scale`` when standardised, and ``meta`` (JSON: spec, task, classes, ...)."""
        arrays = {"params": self.network.params}
        if self.standardizer is not None:
            arrays["mean"] = self.standardizer.mean
            arrays["scale"] = self.standardizer.scale
        net = self.network
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            arrays[f"W{i}"], arrays[f"b{i}"] = w, b  # convenient for other tools; not read back
        meta = {
            "format": MODEL_FORMAT,
            "spec": self.spec,
            "task": self.task,
            "classes": self.classes,
            "feature_names": self.feature_names,
            "dtype": self.network.dtype.name,
            "standardized": self.standardizer is not None,
            "metrics": self.metrics,
        }
        return serialize.dump(arrays, meta)

    def save(self, file: str | Path | BinaryIO) -> None:
        data = self.to_bytes()
        if isinstance(file, str | Path):
            Path(file).write_bytes(data)
        else:
            file.write(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        """Load ``to_bytes`` output. Shapes are checked against the spec before any array is
        read; nothing is unpickled."""
        holder: dict[str, Any] = {}

        def expect(meta: dict[str, Any]) -> serialize.Expected:
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"not a model archive (format {meta.get('format')!r})")
            spec = meta.get("spec")
            if not isinstance(spec, dict) or not isinstance(spec.get("network"), dict):
                raise ValueError("the model archive has no network spec")
            net = Network(spec["network"], dtype=meta.get("dtype", "float32"))
            classes = meta.get("classes")
            if classes is not None and not (isinstance(classes, list) and len(classes) == (
                    2 if net.n_outputs == 1 else net.n_outputs)):
                n = len(classes) if isinstance(classes, list) else repr(classes)
                raise ValueError(f"the model archive lists {n} classes for a network with "
                                 f"{net.n_outputs} outputs")
            holder["network"] = net
            out: serialize.Expected = {"params": ((net.n_params,), (net.dtype.name,))}
            if meta.get("standardized"):
                out["mean"] = out["scale"] = ((net.n_inputs,), ("float64",))
            return out

        arrays, meta = serialize.load(data, expect)
        net = holder["network"]
        net.params[...] = arrays["params"]
        std = Standardizer(arrays["mean"], arrays["scale"]) if "mean" in arrays else None
        return cls(meta["spec"], net, task=meta.get("task", "regression"), standardizer=std,
                   classes=meta.get("classes"), feature_names=meta.get("feature_names"),
                   metrics=meta.get("metrics"))

    @classmethod
    def load(cls, file: str | Path | BinaryIO) -> Model:
        if isinstance(file, str | Path):
            return cls.from_bytes(Path(file).read_bytes())
        return cls.from_bytes(file.read())


def _targets(y: Any, task: str, n: int) -> tuple[np.ndarray | list[Any], list[Any] | None, int]:
    if task == "classification":
        labels = list(np.asarray(y).ravel()) if not isinstance(y, list) else y
        if len(labels) != n:
            raise ValueError(f"got {n} input rows but {len(labels)} labels")
        classes = LabelEncoder.classes_of(labels)
        if len(classes) < 2:
            raise ValueError(f"classification needs at least 2 classes, got {classes}")
        return labels, classes, len(classes)
    Y = np.asarray(y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2 or Y.shape[0] != n:
        raise ValueError(f"targets must have shape ({n}, n_outputs), got {Y.shape}")
    if not np.isfinite(Y).all():
        raise ValueError("targets contain NaN or infinite values")
    return Y, None, Y.shape[1]


def gradient_check_report(network: Network, errors: dict[str, float], rows: int
                          ) -> dict[str, Any]:
    """The verdict of a gradient check with what it used: per-layer relative errors and
    parameter counts, rows, tolerance, step."""
    worst = max(errors, key=errors.__getitem__)
    return {
        "passed": errors[worst] <= GRADIENT_CHECK_TOLERANCE,
        "tolerance": GRADIENT_CHECK_TOLERANCE,
        "rows": rows,
        "eps": 1e-6,
        "worst_layer": worst,
        "max_error": errors[worst],
        "layers": [{"layer": name, "relative_error": errors[name],
                    "parameters_checked": min(GRADIENT_CHECK_PER_LAYER,
                                              (w.stop - w.start) + (b.stop - b.start))}
                   for name, (w, b) in zip(network.layer_names(), network.slices, strict=True)],
    }


def train(spec: dict[str, Any], X: Any, y: Any, *, task: str = "auto",
          feature_names: Sequence[str] | None = None, callback: Callback | None = None,
          callback_every: int | None = None, callback_seconds: float | None = None,
          resume: bytes | None = None, continue_from: Model | None = None,
          same_data: bool = True) -> Model:
    """Train a network on ``X`` ``(n_samples, n_features)`` and ``y``.

    ``y`` is ``(n_samples, n_outputs)`` or ``(n_samples,)`` numbers for regression, or a sequence
    of class labels (strings or integers) for classification; ``task="auto"`` tells them apart
    (1-D strings/integers/booleans are labels). ``resume`` is a checkpoint taken by a callback
    (``progress.checkpoint()``) of an earlier run with the same spec and data; the run goes on
    bit for bit as if it had never stopped (the checkpoint holds no history: the resumed
    model's ``history`` starts at the epoch after it). ``callback_every`` adds calls between
    batches; ``callback_seconds`` lets the compiled kernel call back once per group of epochs
    (``progress.rows``) about that many seconds apart, at its multi-epoch speed.

    ``continue_from`` (a model with its ``training_state``) trains that model further for the
    spec's ``epochs`` more: the same architecture, its input scaling and classes, its weights and
    epoch counter, and its optimiser state, schedule and random generator where the spec keeps
    them (``Trainer.carry``; ``same_data``: ``X`` holds the rows it was trained on). Continuing
    with nothing changed is the uninterrupted run, bit for bit.

    The returned model has ``history``, ``metrics`` (of the epoch whose weights it holds),
    ``stop_reason`` (``epochs``, ``early_stopping``, ``target_loss`` or ``callback``) and the
    fully resolved ``spec`` (with the seed that was used).
    Raises ``SpecError`` (a ``ValueError``) on a bad spec, ``ValueError`` on bad data,
    ``DivergenceError`` when training diverges, ``GradientCheckError`` when asked to check
    gradients and they disagree.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"inputs must be a non-empty 2-D array, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("inputs contain NaN or infinite values")
    n = X.shape[0]
    src = continue_from
    if src is not None:
        if src.training_state is None:
            raise ValueError("the model to continue from keeps no training state")
        if task not in ("auto", src.task):
            raise ValueError(f"the model to continue from is a {src.task} model, not {task}")
        task = src.task
    task = infer_task(y) if task == "auto" else task
    if task not in TASKS:
        raise ValueError(f"task must be 'auto' or one of {TASKS}, got {task!r}")
    targets, classes, n_outputs = _targets(y, task, n)
    if src is not None and src.encoder is not None:
        src.encoder.indices(targets)  # every label must be one of the model's classes
        classes, n_outputs = src.classes, len(src.classes)
    spec = resolve_spec(spec, n_inputs=X.shape[1], n_outputs=n_outputs, task=task, n_rows=n)
    if src is not None:
        check_continuable(spec, src.spec)
    cfg = spec["training"]
    dtype = np.dtype(cfg["dtype"])

    rng = np.random.default_rng(cfg["seed"])
    order = np.arange(n)
    n_val = 0
    if cfg["validation_split"] > 0:
        order = rng.permutation(n)
        n_val = round(n * cfg["validation_split"])
        if n_val < 1 or n - n_val < 1:
            raise ValueError(f"validation_split {cfg['validation_split']} leaves no "
                             f"{'validation' if n_val < 1 else 'training'} rows out of {n}")
    train_idx, val_idx = np.sort(order[n_val:]), np.sort(order[:n_val])

    network = Network(spec["network"], X.shape[1], dtype)
    network.initialize(rng)
    model = Model(spec, network, task=task, classes=classes, feature_names=feature_names)
    if src is not None:
        model.standardizer = src.standardizer
    elif cfg["standardize"]:
        model.standardizer = Standardizer.fit(X[train_idx])
    if src is None:
        trainer = Trainer(network, cfg, classification=task == "classification", rng=rng)
    else:  # its epochs are counted on from the source's
        state = src.training_state
        assert state is not None
        trainer = Trainer(network, {**cfg, "epochs": state_epoch(state) + cfg["epochs"]},
                          classification=task == "classification", rng=rng)
        model.kept = trainer.carry(state, same_data=same_data)
    Xp = model._inputs(X)
    if model.encoder is not None:
        Yp = model.encoder.encode(targets, dtype)
    else:
        Yp = np.asarray(targets, dtype=dtype)

    if cfg["gradient_check"]:
        rows = train_idx[:GRADIENT_CHECK_ROWS]
        errors = gradient_check(network, Xp[rows], Yp[rows], cfg["loss"], cfg["l2"],
                                max_checks_per_layer=GRADIENT_CHECK_PER_LAYER,
                                rng=np.random.default_rng(0),
                                kernel=cfg["kernel"])
        model.gradient_check = gradient_check_report(network, errors, len(rows))
        if not model.gradient_check["passed"]:
            raise GradientCheckError(errors, GRADIENT_CHECK_TOLERANCE, model.gradient_check)

    if resume is not None:
        trainer.restore(resume)
    X_val = Xp[val_idx] if n_val else None
    Y_val = Yp[val_idx] if n_val else None
    model.history = trainer.fit(Xp[train_idx], Yp[train_idx], X_val, Y_val,
                                callback=callback, callback_every=callback_every,
                                callback_seconds=callback_seconds)
    model.stop_reason = trainer.stop_reason
    model.training_state, model.epochs_done = trainer.final_state(), trainer.epoch
    if trainer.stop_reason == "callback":  # stopped from outside: keep the best weights so far
        trainer.keep_best()
    model.diagnostics = trainer.diagnostics
    model.warnings = findings(model.history, model.diagnostics)
    if n_val:
        try:
            model.evaluation = evaluate(model, X[val_idx], targets[val_idx] if classes is None
                                        else [targets[i] for i in val_idx])
        except ValueError:  # outputs that overflow on some validation row: no report
            model.evaluation = None
    best = trainer.best_record()
    if best is not None:
        model.metrics = {k: best[k] for k in ("epoch", "loss", "val_loss", "accuracy",
                                              "val_accuracy")}
    return model
