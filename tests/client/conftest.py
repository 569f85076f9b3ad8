"""Client and CLI tests: a real stack (gunicorn + a Celery worker, both backends as the e2e
tests run them) with small limits, so that the limits' answers can be met on purpose; and a
scripted fake server for retries and stream cuts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backprop_client import Client
from tests.e2e.conftest import Stack

from .fake import FakeServer, serve

MAX_PREDICT_ROWS = 25
MAX_FEATURES = 40


@pytest.fixture(scope="module", params=["sqlite+filesystem", "postgres+redis"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    if request.param == "sqlite+filesystem":
        db_url, broker = f"sqlite:///{data_dir / 'service.db'}", "filesystem://"
    else:
        db_url = request.getfixturevalue("postgres_url")
        redis_url = request.getfixturevalue("redis_url")
        import redis

        broker = redis_url.rsplit("/", 1)[0] + "/" + os.environ.get("TEST_REDIS_DB", "15")
        redis.Redis.from_url(broker).flushdb()
    s = Stack(data_dir, db_url, broker, MAX_PREDICT_ROWS=str(MAX_PREDICT_ROWS),
              MAX_FEATURES=str(MAX_FEATURES)).start()
    yield s
    s.stop()


@pytest.fixture()
def client(stack: Stack) -> Iterator[Client]:
    with Client(stack.base, stack.key, backoff=0.05) as c:
        yield c


@pytest.fixture()
def fake() -> Iterator[FakeServer]:
    yield from serve()


def three_classes(n: int = 240, seed: int = 7) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 1.0], [2.5, 0.5, -1.0], [0.5, 2.5, 0.0]])
    names = ["setosa", "versicolor", "virginica"]
    idx = rng.integers(0, 3, size=n)
    X = centres[idx] + rng.normal(scale=0.9, size=(n, 3))
    return X, [names[i] for i in idx]


def write_csv(path: Path, X: np.ndarray, labels: list[str]) -> Path:
    lines = ["sepal,petal,stem,species"]
    lines += [",".join(repr(float(v)) for v in row) + f",{label}"
              for row, label in zip(X, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


SPEC = {"network": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 3}]},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 30,
                     "batch_size": 16, "validation_split": 0.2, "seed": 11}}


def free_port_url() -> str:
    from tests.e2e.conftest import free_port

    return f"http://127.0.0.1:{free_port()}"
