"""The two training kernels against each other, the ``training.kernel`` field, the multi-epoch
path of the compiled kernel, and where its compiled code is cached.

Between kernels, after one epoch from the same start: float64 parameters agree to 1e-12 (the
kernels differ only in summation order and in libm against NumPy's own tanh/exp, each a few
units in the last place, 1e-16). float32 parameters agree to ``F32_TOLERANCE``: the same few
ulps are 2^-24 ~ 6e-8 relative per operation, and one epoch chains a few hundred dependent
operations per weight (forward, backward, update, per batch), so the drift stays well under
1e-5 on weights of order 1 (measured: ~1e-6 at most on this grid); a ReLU whose input sits
within that noise of 0 could flip and amplify it, which the fixed data here does not hit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backprop
from backprop import DivergenceError, Network, SpecError, Trainer, kernels, resolve_spec

needs_numba = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")
F32_TOLERANCE = 1e-5
ROOT = Path(__file__).resolve().parents[2]

OPTIMIZERS = [
    {"name": "sgd", "learning_rate": 0.1},
    {"name": "sgd", "learning_rate": 0.02, "momentum": 0.9},
    {"name": "sgd", "learning_rate": 0.02, "momentum": 0.9, "nesterov": True},
    {"name": "adagrad", "learning_rate": 0.1},
    {"name": "rmsprop", "learning_rate": 0.01},
    {"name": "adam", "learning_rate": 0.01},
    {"name": "rprop"},
]
# (hidden, output, loss, task): every loss x output pairing, every hidden activation
NETS = [
    ("tanh", "identity", "mse", "regression"),
    ("sigmoid", "sigmoid", "mse", "regression"),
    ("relu", "tanh", "mse", "regression"),
    ("leaky_relu", "relu", "mse", "regression"),
    ("tanh", "leaky_relu", "mse", "regression"),
    ("sigmoid", "softmax", "mse", "regression"),
    ("relu", "sigmoid", "binary_cross_entropy", "classification"),
    ("leaky_relu", "softmax", "cross_entropy", "classification"),
]


def data(task: str, out: str, n: int = 37) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(n, 5))
    if task == "classification" and out == "sigmoid":
        return X, (X[:, :1] + X[:, 1:2] > 0).astype(float)
    if task == "classification":
        return X, np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    if out == "softmax":
        return X, rng.dirichlet(np.ones(3), size=n)
    if out == "relu":
        return X, np.abs(np.tanh(X[:, :3] * 0.7))
    return X, np.tanh(X[:, :3] * 0.7)


def trained(kernel: str, hidden: str, out: str, loss: str, task: str, optimizer: dict[str, Any],
            batch: int | str, dtype: str, epochs: int = 1, l2: float = 0.0,
            callback: Any = None, fit: bool = True,
            callback_seconds: float | None = None) -> Trainer:
    """A 5-6-4-out network from a fixed start (biases too), trained ``epochs`` (or not)."""
    X, Y = data(task, out)
    n_out = Y.shape[1]
    spec = resolve_spec({"network": {"layers": [{"units": 6, "activation": hidden},
                                                {"units": 4, "activation": hidden},
                                                {"units": n_out, "activation": out}]},
                         "training": {"loss": loss, "optimizer": optimizer, "epochs": epochs,
                                      "batch_size": batch, "l2": l2, "seed": 2,
                                      "dtype": dtype, "kernel": kernel}},
                        n_inputs=5, n_outputs=n_out)
    net = Network(spec["network"], 5, dtype)
    net.initialize(np.random.default_rng(1))
    net.params[net.n_weights:] = np.random.default_rng(3).normal(0, 0.1, net.n_params
                                                                 - net.n_weights)
    trainer = Trainer(net, spec["training"], classification=task == "classification")
    if fit:
        trainer.fit(X, Y, callback=callback, callback_seconds=callback_seconds)
    return trainer


CASES = [(net, opt, batch, l2) for net in NETS for opt in OPTIMIZERS
         for batch in (["full"] if opt["name"] == "rprop" else [1, 8, "full"])
         for l2 in (0.0, 0.01)]


@needs_numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(("net", "optimizer", "batch", "l2"), CASES)
def test_kernels_agree_after_one_epoch(net: tuple[str, str, str, str],
                                       optimizer: dict[str, Any], batch: int | str, l2: float,
                                       dtype: str) -> None:
    a = trained("numpy", *net, optimizer, batch, dtype, l2=l2)
    b = trained("compiled", *net, optimizer, batch, dtype, l2=l2)
    start = trained("numpy", *net, optimizer, batch, dtype, fit=False)
    for w, w0 in zip(a.network.weights, start.network.weights, strict=True):
        assert np.abs(w - w0).max() > 1e-6  # every layer learnt something
    assert np.abs(a.network.params).max() < 10  # tame training, not a run-away
    tol = 1e-12 if dtype == "float64" else F32_TOLERANCE
    np.testing.assert_allclose(b.network.params, a.network.params, rtol=0, atol=tol)
    ra, rb = a.history[0], b.history[0]
    assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-10 if dtype == "float64" else 1e-5)
    assert rb["accuracy"] == ra["accuracy"]
    # the optimiser's state is the NumPy optimiser's own, so checkpoints carry over (in float32
    # an accumulator summed over an online epoch's steps differs in its 6th-7th digit)
    rtol = 1e-6 if dtype == "float64" else 1e-5
    for key, value in a.optimizer.get_state().items():
        np.testing.assert_allclose(b.optimizer.get_state()[key], value, rtol=rtol, atol=tol)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state  # the same shuffles


@needs_numba
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: "-".join(map(str, o.values())))
def test_many_epochs_per_call_equal_one_epoch_at_a_time(optimizer: dict[str, Any]) -> None:
    batch = "full" if optimizer["name"] == "rprop" else 5
    args = ("tanh", "softmax", "cross_entropy", "classification", optimizer, batch, "float32")
    fast = trained("compiled", *args, epochs=30)
    slow = trained("compiled", *args, epochs=30, callback=lambda progress: False)
    np.testing.assert_array_equal(fast.network.params, slow.network.params)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in fast.history] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in slow.history]
    assert fast.rng.bit_generator.state == slow.rng.bit_generator.state


@needs_numba
def test_divergence_in_a_multi_epoch_call_is_reported_like_one_epoch_at_a_time() -> None:
    results = []
    for callback in (None, lambda progress: False):
        with pytest.raises(DivergenceError) as info:
            trained("compiled", "relu", "identity", "mse", "regression",
                    {"name": "sgd", "learning_rate": 5.0, "momentum": 0.9}, 4, "float32",
                    epochs=50, callback=callback)
        results.append(info.value)
    assert results[0].epoch == results[1].epoch > 1
    assert str(results[0]) == str(results[1])


@needs_numba
def test_training_through_train_records_the_kernel_and_resumes_with_it() -> None:
    X, y = data("classification", "softmax")
    spec = {"network": {"layers": [{"units": 5}, {"units": 3}]},
            "training": {"epochs": 6, "batch_size": 4, "seed": 1}}
    model = backprop.train(spec, X, y.argmax(axis=1))
    assert model.spec["training"]["kernel"] == "compiled"  # auto, on a small online-ish net
    saved: dict[str, bytes] = {}

    def stop(progress: backprop.Progress) -> bool:
        saved["c"] = progress.checkpoint()
        return progress.epoch == 3

    backprop.train(model.spec, X, y.argmax(axis=1), callback=stop)
    resumed = backprop.train(model.spec, X, y.argmax(axis=1), resume=saved["c"])
    np.testing.assert_array_equal(resumed.network.params, model.network.params)
    other = {**model.spec, "training": {**model.spec["training"], "kernel": "numpy"}}
    with pytest.raises(ValueError, match="different training spec"):
        backprop.train(other, X, y.argmax(axis=1), resume=saved["c"])


# -- the spec field --------------------------------------------------------------------------

LAYERS = [{"units": 8}, {"units": 2}]


def kernel_of(training: dict[str, Any], layers: list[dict[str, Any]] = LAYERS,
              n_inputs: int = 4, n_rows: int | None = 100) -> str:
    spec = resolve_spec({"network": {"layers": layers}, "training": training},
                        n_inputs=n_inputs, n_outputs=layers[-1]["units"], n_rows=n_rows)
    return spec["training"]["kernel"]


@needs_numba
def test_auto_compiles_online_and_small_batches_on_narrow_layers() -> None:
    assert kernels.AUTO_MAX_WORK == 160_000  # the rule bench/kernels.py measured
    assert kernel_of({}) == "compiled"  # batch 32 on 4-8-2
    assert kernel_of({"batch_size": 1}) == "compiled"
    assert kernel_of({"batch_size": 256}) == "compiled"  # 50 weights: still tiny products
    assert kernel_of({"batch_size": "full"}, n_rows=4) == "compiled"  # XOR-sized
    assert kernel_of({"batch_size": "full"}, n_rows=None) == "numpy"  # rows unknown
    assert kernel_of({"batch_size": "full"}, n_rows=10_000) == "numpy"
    digits = [{"units": 32}, {"units": 10}]  # 64-32-10: 2,368 weights
    assert kernel_of({"batch_size": 64}, digits, n_inputs=64) == "compiled"
    assert kernel_of({"batch_size": 128}, digits, n_inputs=64) == "numpy"
    wide = [{"units": 256}, {"units": 128}, {"units": 10}]  # 784-256-128-10
    assert kernel_of({"batch_size": 8}, wide, n_inputs=784) == "numpy"
    assert kernel_of({"batch_size": 1}, wide, n_inputs=784) == "compiled"
    huge = [{"units": 1024}, {"units": 1024}, {"units": 10}]
    assert kernel_of({"batch_size": 1}, huge, n_inputs=784) == "numpy"
    assert kernel_of({"kernel": "numpy", "batch_size": 1}) == "numpy"
    assert kernel_of({"kernel": "compiled", "batch_size": "full"}, wide, n_inputs=784,
                     n_rows=10_000) == "compiled"


def test_without_numba_auto_is_numpy_and_compiled_is_a_spec_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "available", lambda: False)
    assert kernel_of({"batch_size": 1}) == "numpy"
    with pytest.raises(SpecError) as info:
        kernel_of({"kernel": "compiled"})
    assert info.value.loc == ("training", "kernel")
    assert "numba" in str(info.value) and "'numpy'" in str(info.value)


def test_unknown_kernel_lists_the_choices() -> None:
    with pytest.raises(SpecError) as info:
        kernel_of({"kernel": "fast"})
    assert info.value.loc == ("training", "kernel")
    assert "['auto', 'compiled', 'numpy']" in str(info.value)


# -- the cache -------------------------------------------------------------------------------


def run_python(code: str, env: dict[str, str]) -> str:
    full = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    return out.stdout


XOR_RUN = """
    import numpy as np, backprop
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    spec = {"network": {"layers": [{"units": 3}, {"units": 1, "activation": "sigmoid"}]},
            "training": {"kernel": "compiled", "batch_size": 1, "epochs": 3, "seed": 0}}
    model = backprop.train(spec, X, X[:, :1] != X[:, 1:])
    print(model.spec["training"]["kernel"], backprop.kernels.cache.directory())
"""


@needs_numba
@pytest.mark.slow
def test_warm_up_fills_the_cache_in_the_directory_it_is_given(tmp_path: Path) -> None:
    where = tmp_path / "data" / "numba-cache"
    run_python(f"""
        from backprop import kernels
        kernels.warm_up({str(where)!r}, background=False)
    """, {})
    assert any(where.rglob("*.nbi")) and any(where.rglob("*.nbc"))
    # a later process uses it (NUMBA_CACHE_DIR set by the user wins over the given directory)
    out = run_python(XOR_RUN, {"NUMBA_CACHE_DIR": str(where)})
    assert out.split() == ["compiled", str(where)]


@needs_numba
@pytest.mark.slow
def test_nothing_writable_still_trains_uncached(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a directory cannot be made below a file
    patch = textwrap.dedent(f"""
        from pathlib import Path
        from backprop.kernels import cache
        cache._candidates = lambda preferred: [Path({str(blocker)!r}) / "cache"]
    """)
    out = run_python(patch + textwrap.dedent(XOR_RUN), {"NUMBA_CACHE_DIR": str(blocker / "x")})
    assert out.split() == ["compiled", "None"]


def test_the_first_writable_candidate_is_chosen(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from backprop.kernels import cache

    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "cache"))
    candidates = cache._candidates(tmp_path / "data")
    assert candidates[:2] == [blocker / "cache", tmp_path / "data"]
    assert not cache._writable(candidates[0]) and cache._writable(candidates[1])
