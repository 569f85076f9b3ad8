"""Standardisation (fitted on training rows only, constant columns safe) and label encoding
(strings, integers, binary one-column sigmoid classification)."""

import numpy as np
import pytest

import backprop
from backprop import LabelEncoder, Standardizer

# -- Standardizer ----------------------------------------------------------------------------


def test_standardizer_centres_and_scales_each_column() -> None:
    X = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])
    std = Standardizer.fit(X)
    np.testing.assert_allclose(std.mean, [3.0, 20.0])
    np.testing.assert_allclose(std.scale, [np.sqrt(8 / 3), np.sqrt(200 / 3)])
    Z = std.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-15)
    np.testing.assert_allclose(Z.std(axis=0), 1.0)
    assert Z.dtype == np.float64
    assert std.transform(X, np.float32).dtype == np.float32
    np.testing.assert_array_equal(X, [[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]])  # not modified


@pytest.mark.parametrize("value", [0.0, 7.0, -1e6, 1e-300])
def test_constant_column_does_not_divide_by_zero(value: float) -> None:
    X = np.array([[value, 1.0], [value, 2.0], [value, 4.0]])
    std = Standardizer.fit(X)
    assert std.scale[0] == 1.0
    Z = std.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[:, 0], 0.0)
    assert std.transform(np.array([[value + 2.0, 1.0]]))[0, 0] == pytest.approx(2.0)


def test_nearly_constant_large_column_counts_as_constant() -> None:
    # float round-off on a large constant must not produce a huge scale factor
    X = np.full((4, 1), 1e8) + np.array([[0.0], [3e-8], [0.0], [0.0]])
    assert 0.0 < X.std() < 1e-7
    assert Standardizer.fit(X).scale[0] == 1.0


def test_train_fits_the_standardizer_on_training_rows_only() -> None:
    # Column 0 is 2**i on row i, so the fitted mean tells exactly which rows were used.
    n, split = 20, 0.25
    rng = np.random.default_rng(0)
    X = np.c_[2.0 ** np.arange(n), rng.normal(size=n)]
    y = rng.normal(size=n)
    spec = {"network": {"layers": [{"units": 3}, {"units": 1}]},
            "training": {"epochs": 2, "validation_split": split, "seed": 7}}
    model = backprop.train(spec, X, y)
    n_val = round(n * split)
    total = round(model.standardizer.mean[0] * (n - n_val))
    rows = [i for i in range(n) if total >> i & 1]
    assert len(rows) == n - n_val and sum(2**i for i in rows) == total
    val_rows = sorted(set(range(n)) - set(rows))
    np.testing.assert_allclose(model.standardizer.mean, X[rows].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(model.standardizer.scale, X[rows].std(axis=0), rtol=1e-12)
    assert not np.allclose(model.standardizer.mean, X.mean(axis=0))
    # and the complement is what the last epoch was validated on
    Xv = model.standardizer.transform(X[val_rows], np.float32)
    val_loss = model.network.loss(Xv, y[val_rows].reshape(-1, 1), "mse")
    assert model.history[-1]["val_loss"] == pytest.approx(val_loss, rel=1e-5)


def test_standardize_false_keeps_raw_inputs() -> None:
    X = np.array([[0.0, 100.0], [1.0, 300.0], [2.0, 200.0]])
    spec = {"network": {"layers": [{"units": 2}, {"units": 1}]},
            "training": {"epochs": 1, "standardize": False, "seed": 0}}
    model = backprop.train(spec, X, [0.0, 1.0, 0.5])
    assert model.standardizer is None
    np.testing.assert_array_equal(model.predict(X), model.network.forward(X))


# -- LabelEncoder ----------------------------------------------------------------------------


def test_string_labels_one_hot_and_back() -> None:
    labels = ["setosa", "virginica", "setosa", "versicolor"]
    classes = LabelEncoder.classes_of(labels)
    assert classes == ["setosa", "versicolor", "virginica"]
    enc = LabelEncoder(classes)
    Y = enc.encode(labels)
    np.testing.assert_array_equal(Y, [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert enc.decode(Y) == labels
    assert enc.probabilities(Y) is Y
    assert enc.encode(labels, np.float32).dtype == np.float32


def test_integer_labels_are_sorted_numerically_and_kept_as_ints() -> None:
    labels = np.array([10, 2, 33, 2])
    classes = LabelEncoder.classes_of(labels)
    assert classes == [2, 10, 33]
    assert all(type(c) is int for c in classes)  # plain ints: JSON-able
    enc = LabelEncoder(classes)
    np.testing.assert_array_equal(enc.indices(labels), [1, 0, 2, 0])
    assert enc.decode(enc.encode(labels)) == [10, 2, 33, 2]


def test_mixed_labels_put_integers_before_strings() -> None:
    assert LabelEncoder.classes_of(["b", 3, "a", 1]) == [1, 3, "a", "b"]


def test_unknown_label_is_a_value_error_listing_the_classes() -> None:
    enc = LabelEncoder(["cat", "dog"])
    with pytest.raises(ValueError, match=r"unknown class label 'cow'.*\['cat', 'dog'\]"):
        enc.encode(["cat", "cow"])


def test_binary_encoding_is_one_column() -> None:
    enc = LabelEncoder(["no", "yes"], binary=True)
    Y = enc.encode(["yes", "no", "yes"])
    np.testing.assert_array_equal(Y, [[1.0], [0.0], [1.0]])
    probs = enc.probabilities(np.array([[0.9], [0.2]]))
    np.testing.assert_allclose(probs, [[0.1, 0.9], [0.8, 0.2]])
    assert enc.decode(probs) == ["yes", "no"]


def test_encoder_validation() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        LabelEncoder(["only"])
    with pytest.raises(ValueError, match="exactly 2 classes"):
        LabelEncoder(["a", "b", "c"], binary=True)


def test_binary_sigmoid_classification_end_to_end() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "pos", "neg")
    spec = {"network": {"layers": [{"units": 4}, {"units": 1}]},
            "training": {"optimizer": {"name": "adam", "learning_rate": 0.05}, "epochs": 40,
                         "seed": 2}}
    model = backprop.train(spec, X, labels)
    assert model.spec["network"]["layers"][-1]["activation"] == "sigmoid"
    assert model.spec["training"]["loss"] == "binary_cross_entropy"
    assert model.classes == ["neg", "pos"] and model.n_outputs == 2
    assert model.network.n_outputs == 1
    probs = model.predict(X)
    assert probs.shape == (80, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[:, 1], model.network.forward(
        model.standardizer.transform(X, np.float32))[:, 0])
    predicted = model.predict_labels(X)
    assert set(predicted) <= {"neg", "pos"}
    assert np.mean(np.array(predicted) == labels) > 0.9
    assert model.history[-1]["accuracy"] > 0.9
