"""Activations: forward values against the textbook formulas, backward against central
differences, numerical safety at extreme inputs, and the name table's errors."""

import numpy as np
import pytest

from backprop.activations import ACTIVATIONS, LEAKY_SLOPE, OUTPUT_ONLY, activation, apply

from .reference import reference

ELEMENTWISE = ["identity", "sigmoid", "tanh", "relu", "leaky_relu"]


def moderate_inputs(seed: int = 0) -> np.ndarray:
    """(6, 5) values in about [-4, 4], none within 1e-3 of 0 (the rectifiers' kink)."""
    z = np.random.default_rng(seed).uniform(-4.0, 4.0, size=(6, 5))
    z[np.abs(z) < 1e-3] = 0.5
    return z


def test_table_lists_the_documented_activations() -> None:
    assert set(ACTIVATIONS) == {*ELEMENTWISE, "softmax"}
    assert {"softmax"} == OUTPUT_ONLY
    assert ACTIVATIONS["identity"] == (None, None)


@pytest.mark.parametrize("name", [*ELEMENTWISE, "softmax"])
def test_forward_matches_formula(name: str) -> None:
    z = moderate_inputs()
    np.testing.assert_allclose(apply(name, z), reference(name, z), rtol=1e-13, atol=1e-15)


def test_leaky_relu_slope_is_one_hundredth() -> None:
    assert LEAKY_SLOPE == 0.01
    np.testing.assert_array_equal(apply("leaky_relu", np.array([[-3.0, 2.0]])), [[-0.03, 2.0]])


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "identity"])
def test_forward_overwrites_its_argument_in_place(name: str) -> None:
    forward = activation(name).forward
    z = moderate_inputs()
    buf = z.copy()
    assert forward(buf) is None
    np.testing.assert_allclose(buf, reference(name, z), rtol=1e-13, atol=1e-15)


def test_apply_does_not_modify_its_input_and_keeps_float32() -> None:
    z = np.array([[1.0, -2.0]], dtype=np.float32)
    out = apply("tanh", z)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(z, [[1.0, -2.0]])
    assert apply("sigmoid", np.array([[0, 1]])).dtype == np.float64  # integers are promoted


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow_for_large_inputs(dtype: type) -> None:
    # filterwarnings=error turns an overflow in exp into a failure here.
    z = np.array([[-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4]], dtype=dtype)
    a = apply("sigmoid", z)
    assert np.isfinite(a).all()
    assert a.dtype == dtype
    assert a[0, 0] == 0.0 and a[0, -1] == 1.0
    assert a[0, 3] == 0.5
    assert np.all(np.diff(a[0]) >= 0.0)
    assert 0.0 <= a[0, 2] < 1e-7 and 1.0 - a[0, -3] < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_rows_sum_to_one_with_huge_logits(dtype: type) -> None:
    big = 1e30 if dtype == np.float32 else 1e300
    z = np.array([[big, 0.0, -big], [1000.0, 999.0, 998.0], [-1000.0, -1000.0, -1000.0]],
                 dtype=dtype)
    a = apply("softmax", z)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a[0], [1.0, 0.0, 0.0])
    e = np.exp(np.array([2.0, 1.0, 0.0]))
    np.testing.assert_allclose(a[1], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(a[2], [1 / 3] * 3, rtol=1e-6)


def test_softmax_is_shift_invariant_per_row() -> None:
    z = moderate_inputs()
    shifted = z + np.arange(6.0)[:, None] * 100.0
    np.testing.assert_allclose(apply("softmax", shifted), apply("softmax", z), rtol=1e-12)


def numeric_vjp(name: str, z: np.ndarray, v: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """``J(z)^T v`` of ``f`` by central differences on every input, in float64."""
    out = np.empty_like(z)
    for idx in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[idx] += h
        down[idx] -= h
        out[idx] = np.vdot(v, reference(name, up) - reference(name, down)) / (2 * h)
    return out


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n != "identity"])
def test_backward_matches_central_differences(name: str) -> None:
    z = moderate_inputs(1)
    v = np.random.default_rng(2).normal(size=z.shape)
    a = apply(name, z)
    delta, tmp = v.copy(), np.empty_like(v)
    activation(name).backward(a, delta, tmp)  # works from the output a, in place on delta
    np.testing.assert_allclose(delta, numeric_vjp(name, z, v), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_rectifier_derivative_is_piecewise_constant(name: str) -> None:
    z = np.array([[-2.0, -1e-3, 1e-3, 2.0]])
    delta = np.ones_like(z)
    activation(name).backward(apply(name, z), delta, np.empty_like(z))
    low = 0.0 if name == "relu" else 0.01
    np.testing.assert_array_equal(delta, [[low, low, 1.0, 1.0]])


def test_softmax_backward_of_a_constant_vector_is_zero() -> None:
    # Softmax outputs sum to 1, so moving along (1, ..., 1) changes nothing.
    a = apply("softmax", moderate_inputs())
    delta = np.full_like(a, 3.0)
    activation("softmax").backward(a, delta, np.empty_like(a))
    np.testing.assert_allclose(delta, 0.0, atol=1e-15)


@pytest.mark.parametrize("bad", ["gelu", "Sigmoid", "", None, 3, ["tanh"]])
def test_unknown_activation_lists_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match="unknown activation") as info:
        activation(bad)  # type: ignore[arg-type]
    for name in ACTIVATIONS:
        assert repr(name) in str(info.value)

