"""Preprocessing kept with a model: input standardisation and class-label encoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class Standardizer:
    """``(x - mean) / scale`` per column; constant columns get scale 1."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Learn mean and scale from ``X`` ``(n_samples, n_features)``."""
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))] = 1.0
        return cls(mean, scale)

    def transform(self, X: np.ndarray, dtype: np.dtype | str = np.float64) -> np.ndarray:
        out = np.asarray(X, dtype=np.float64) - self.mean
        out /= self.scale
        return out.astype(dtype, copy=False)


def _sort_key(label: Any) -> tuple[int, Any]:
    return (1, label) if isinstance(label, str) else (0, label)


def _plain(label: Any) -> Any:
    """NumPy scalars to Python ``str``/``int``/``float``/``bool`` (JSON-able, sortable)."""
    return label.item() if isinstance(label, np.generic) else label


class LabelEncoder:
    """Class labels (strings or integers) <-> one-hot rows.

    ``binary=True`` encodes two classes as one column (``1`` for ``classes[1]``) for a 1-unit
    sigmoid output.
    """

    def __init__(self, classes: Sequence[Any], binary: bool = False) -> None:
        self.classes = [_plain(c) for c in classes]
        if len(self.classes) < 2:
            raise ValueError(f"classification needs at least 2 classes, got {self.classes}")
        if binary and len(self.classes) != 2:
            raise ValueError("a binary (1-column) encoding needs exactly 2 classes")
        self.binary = binary
        self._index = {c: i for i, c in enumerate(self.classes)}

    @staticmethod
    def classes_of(labels: Sequence[Any]) -> list[Any]:
        """Sorted distinct labels (integers before strings)."""
        return sorted({_plain(label) for label in labels}, key=_sort_key)

    def indices(self, labels: Sequence[Any]) -> np.ndarray:
        try:
            return np.fromiter((self._index[_plain(label)] for label in labels), dtype=np.intp)
        except KeyError as exc:
            raise ValueError(f"unknown class label {exc.args[0]!r}; the classes are "
                             f"{self.classes}") from None

    def encode(self, labels: Sequence[Any], dtype: np.dtype | str = np.float64) -> np.ndarray:
        """``(n_samples, n_classes)`` one-hot rows (``(n_samples, 1)`` when binary)."""
        idx = self.indices(labels)
        if self.binary:
            return idx.astype(dtype).reshape(-1, 1)
        out = np.zeros((idx.size, len(self.classes)), dtype=dtype)
        out[np.arange(idx.size), idx] = 1.0
        return out

    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """Network outputs to ``(n_samples, n_classes)`` probabilities."""
        if self.binary:
            p = outputs[:, 0]
            return np.stack([1.0 - p, p], axis=1)
        return outputs

    def decode(self, probabilities: np.ndarray) -> list[Any]:
        return [self.classes[i] for i in np.argmax(probabilities, axis=1)]
