"""Fitted objects as plain data: JSON-able params and named numpy arrays, the form an artifact
stores (artifact.py), so reading a model file runs no code from it.

A stored class has `to_state() -> (params, arrays)` and `from_state(params, arrays)`, which
rebuilds a predict-capable object and raises ValueError (or KeyError, TypeError) on state it cannot
use. A part stored inside another keeps its arrays under a prefix: the correction trees of a
boosted regressor are `correction/feature`, `correction/threshold`, ...
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


def nested(prefix: str, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A part's arrays as its owner stores them: under `prefix/`."""
    return {f"{prefix}/{name}": array for name, array in arrays.items()}


class Part(dict):
    """The arrays stored under `prefix/`, named as the part knows them (`prefix` remembers where)."""

    def __init__(self, prefix: str, arrays: Mapping[str, np.ndarray]):
        start = prefix + "/"
        super().__init__((name[len(start):], array) for name, array in arrays.items() if name.startswith(start))
        self.prefix = _prefix(arrays) + start


def stored_array(arrays: Mapping[str, np.ndarray], name: str, dtype, shape: tuple[int | None, ...]) -> np.ndarray:
    """arrays[name], checked to be what a writer stores: this dtype and shape (None: any length)."""
    if name not in arrays:
        raise ValueError(f"no array {_prefix(arrays) + name!r}")
    array = arrays[name]
    if not isinstance(array, np.ndarray) or array.dtype != np.dtype(dtype):
        raise ValueError(f"array {_prefix(arrays) + name!r} is not {np.dtype(dtype)}")
    if array.ndim != len(shape) or any(want is not None and have != want for have, want in zip(array.shape, shape)):
        raise ValueError(f"array {_prefix(arrays) + name!r} has shape {array.shape}, expected {shape}")
    return array


def stored_indices(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int | None, ...], end: int) -> np.ndarray:
    """An int64 array of indices into something of `end` entries, checked to stay inside it."""
    array = stored_array(arrays, name, np.int64, shape)
    if array.size and (array.min() < 0 or array.max() >= end):
        raise ValueError(f"array {_prefix(arrays) + name!r} holds an index outside 0..{end - 1}")
    return array.astype(np.intp)


def _prefix(arrays: Mapping[str, np.ndarray]) -> str:
    return getattr(arrays, "prefix", "")  # errors name an array as the file does
