"""What bench/engine.py runs: its configurations (A-F), their data, and one trainer per library
(this engine, scikit-learn, PyTorch when installed), each doing the same work per epoch."""

from __future__ import annotations

import itertools
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/engine.py` puts bench/, not the repo, on the path
    sys.path.insert(0, str(ROOT))

import backprop  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is optional
    torch = None

MOMENTUM = 0.9

@dataclass(frozen=True)
class Config:
    key: str
    title: str
    sizes: tuple[int, ...]
    batch: int | None  # None: full batch
    data: str  # "digits", "synthetic" or "xor"
    rows: int  # rows used (digits: all 1,797)
    epochs: int  # epochs per timed repeat
    learning_rate: float
    quick_rows: int
    quick_epochs: int

    @property
    def steps_unit(self) -> bool:
        """Full batch: report steps per second (one step per epoch)."""
        return self.batch is None

    @property
    def n_weights(self) -> int:
        return sum(a * b for a, b in itertools.pairwise(self.sizes))

    @property
    def hidden(self) -> str:
        return "sigmoid" if self.data == "xor" else "relu"

    def arch(self) -> str:
        return "-".join(str(s) for s in self.sizes)


CONFIGS: dict[str, Config] = {c.key: c for c in (
    Config("A", "digits", (64, 32, 10), 32, "digits", 1797, 150, 0.01, 1797, 20),
    Config("B", "synthetic", (784, 256, 128, 10), 128, "synthetic", 60_000, 1, 0.01, 8192, 1),
    Config("C", "synthetic", (784, 1024, 1024, 10), 256, "synthetic", 8192, 1, 0.01, 2048, 1),
    Config("D", "XOR", (2, 2, 1), None, "xor", 4, 15_000, 0.5, 4, 2000),
    Config("E", "digits", (64, 32, 10), 1, "digits", 1797, 2, 0.001, 1797, 1),
    Config("F", "XOR", (2, 2, 1), 1, "xor", 4, 3000, 0.5, 4, 300),
)}


# -- data ----------------------------------------------------------------------------------------


@dataclass
class Data:
    X: np.ndarray  # (n, inputs) float32
    labels: np.ndarray  # (n,) int64 class labels (XOR: 0/1)
    Y: np.ndarray  # (n, outputs) float32: one-hot, or the 0/1 column for XOR


def make_data(cfg: Config, rows: int, seed: int = 0) -> Data:
    """Inputs already preprocessed (standardised / N(0, 1)), as float32."""
    n_out = cfg.sizes[-1]
    if cfg.data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        X = digits.data
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
        labels = digits.target.astype(np.int64)
    elif cfg.data == "synthetic":
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((rows, cfg.sizes[0]), dtype=np.float32)
        teacher = rng.standard_normal((cfg.sizes[0], n_out), dtype=np.float32)
        labels = (X @ teacher).argmax(axis=1).astype(np.int64)  # learnable, balanced
    else:
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        labels = np.array([0, 1, 1, 0], dtype=np.int64)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if n_out == 1:
        Y = labels.astype(np.float32).reshape(-1, 1)
    else:
        Y = np.eye(n_out, dtype=np.float32)[labels]
    return Data(X, labels, Y)


# -- trainers --------------------------------------------------------------------------------


class Runner(Protocol):
    name: str

    def run(self, epochs: int) -> float:
        """Train ``epochs`` more epochs; return the wall-clock seconds."""
        ...


def engine_spec(cfg: Config) -> dict[str, Any]:
    layers = [{"units": u, "activation": cfg.hidden} for u in cfg.sizes[1:-1]]
    if cfg.data == "xor":
        layers.append({"units": 1, "activation": "sigmoid"})
        loss = "mse"
    else:
        layers.append({"units": cfg.sizes[-1], "activation": "softmax"})
        loss = "cross_entropy"
    return {
        "network": {"layers": layers},
        "training": {
            "loss": loss,
            "optimizer": {"name": "sgd", "learning_rate": cfg.learning_rate,
                          "momentum": MOMENTUM},
            "epochs": 1,
            "batch_size": "full" if cfg.batch is None else cfg.batch,
            "shuffle": True,  # the trainer skips it by itself when there is a single batch
            "standardize": False,
            "seed": 0,
            "dtype": "float32",
        },
    }


class EngineRunner:
    """``backprop.Trainer.fit`` on preprocessed float32 arrays; one trainer, continued.
    ``kernel`` ``numpy`` is the runner named ``engine``; the others are named by their kernel."""

    name = "engine"

    def __init__(self, cfg: Config, data: Data, seed: int, kernel: str = "numpy") -> None:
        raw = engine_spec(cfg)
        raw["training"]["kernel"] = kernel
        spec = backprop.resolve_spec(raw, n_inputs=cfg.sizes[0], n_rows=data.X.shape[0])
        self.name = "engine" if kernel == "numpy" else kernel
        self.kernel = spec["training"]["kernel"]
        self.network = backprop.Network(spec["network"], cfg.sizes[0], "float32")
        self.network.initialize(np.random.default_rng(seed))
        self.trainer = backprop.Trainer(self.network, spec["training"],
                                        rng=np.random.default_rng(seed))
        self.X, self.Y = data.X, data.Y

    def run(self, epochs: int) -> float:
        trainer = self.trainer
        # fit trains up to config["epochs"], counting the epochs already done.
        trainer.config = {**trainer.config, "epochs": trainer.epoch + epochs}
        t0 = time.perf_counter()
        trainer.fit(self.X, self.Y)
        return time.perf_counter() - t0


class SklearnRunner:
    """``MLPClassifier(solver="sgd")``, warm-started so every repeat continues training."""

    name = "sklearn"

    def __init__(self, cfg: Config, data: Data, seed: int) -> None:
        from sklearn.neural_network import MLPClassifier

        n = data.X.shape[0]
        self.model = MLPClassifier(
            hidden_layer_sizes=cfg.sizes[1:-1],
            activation="logistic" if cfg.hidden == "sigmoid" else "relu",
            solver="sgd",
            alpha=0.0,
            batch_size=n if cfg.batch is None else cfg.batch,
            learning_rate="constant",
            learning_rate_init=cfg.learning_rate,
            momentum=MOMENTUM,
            nesterovs_momentum=False,
            shuffle=cfg.batch is not None,  # a full batch gains nothing from shuffling
            random_state=seed,
            tol=0.0,
            n_iter_no_change=2**31 - 1,
            early_stopping=False,
            warm_start=True,
            max_iter=1,
        )
        self.X, self.y = data.X, data.labels

    def run(self, epochs: int) -> float:
        from sklearn import config_context
        from sklearn.exceptions import ConvergenceWarning

        self.model.set_params(max_iter=epochs)
        with warnings.catch_warnings(), config_context(assume_finite=True):
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            self.model.fit(self.X, self.y)
            return time.perf_counter() - t0

    def dtype(self) -> str:
        return str(self.model.coefs_[0].dtype)


class TorchRunner:
    """``nn.Sequential`` + ``optim.SGD`` (fused when available), a per-epoch ``randperm`` gathered
    into preallocated tensors (as the engine does) and contiguous batch slices: no DataLoader."""

    name = "torch"

    def __init__(self, cfg: Config, data: Data, seed: int) -> None:
        assert torch is not None
        nn = torch.nn
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        layers: list[Any] = []
        last = len(cfg.sizes) - 2
        for i, (fan_in, fan_out) in enumerate(itertools.pairwise(cfg.sizes)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < last:
                layers.append(nn.Sigmoid() if cfg.hidden == "sigmoid" else nn.ReLU())
        self.X = torch.from_numpy(data.X)
        if cfg.data == "xor":
            layers.append(nn.Sigmoid())
            self.loss_fn: Any = nn.MSELoss()
            self.T = torch.from_numpy(data.Y)
        else:  # logits + CrossEntropyLoss = softmax output + cross-entropy
            self.loss_fn = nn.CrossEntropyLoss()
            self.T = torch.from_numpy(data.labels)
        self.model = nn.Sequential(*layers)
        params = list(self.model.parameters())
        try:
            self.opt = torch.optim.SGD(params, lr=cfg.learning_rate, momentum=MOMENTUM,
                                       fused=True)
            self.fused = True
        except (RuntimeError, TypeError, ValueError):
            self.opt = torch.optim.SGD(params, lr=cfg.learning_rate, momentum=MOMENTUM)
            self.fused = False
        self.n = data.X.shape[0]
        self.bs = self.n if cfg.batch is None else cfg.batch
        self.Xs, self.Ts = torch.empty_like(self.X), torch.empty_like(self.T)

    def run(self, epochs: int) -> float:
        model, opt, loss_fn, X, T = self.model, self.opt, self.loss_fn, self.X, self.T
        n, bs = self.n, self.bs
        shuffle = bs < n
        Xs, Ts = (self.Xs, self.Ts) if shuffle else (X, T)
        index_select = torch.index_select
        t0 = time.perf_counter()
        for _ in range(epochs):
            if shuffle:
                perm = torch.randperm(n, generator=self.gen)
                index_select(X, 0, perm, out=Xs)
                index_select(T, 0, perm, out=Ts)
            for start in range(0, n, bs):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xs[start:start + bs]), Ts[start:start + bs])
                loss.backward()
                opt.step()
        return time.perf_counter() - t0
