"""PAD, TRANSPOSE, CONCATENATION and RESIZE_NEAREST_NEIGHBOR: bit-exact with TFLite's reference
kernels on Keras-built int8 models, and refused by name where the runtime does not follow.

What the TFLite side does, checked here: none of these ops requantizes. PAD fills with the output
zero point; the converter gives every input of an int8 CONCATENATION the output's scale and zero
point (the union of the calibration ranges), and TFLite refuses any other; tf.image.resize(...,
"nearest") converts to half_pixel_centers=True, the v1 op to its own flags. (Keras 3's
UpSampling2D converts to TILE, not RESIZE_NEAREST_NEIGHBOR, so it has no test here.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hwbench.errors import PlanError
from hwbench.tflite_reader import parse_tflite
from firmware_runner.runtime.host import HostRuntime
from firmware_runner.compiler.plan import compile_plan
from keras_ops import assert_bit_exact, int8_model, op_types, with_params

# Calibration ranges: a symmetric one, and lopsided ones that put the zero point at an end of int8.
SYMMETRIC, POSITIVE, NEGATIVE = (-1.0, 1.0), (0.0, 100.0), (-100.0, 0.0)


def layers():
    import keras

    return keras.layers


def tensorflow():
    import tensorflow as tf

    return tf


# ---- PAD ------------------------------------------------------------------------------------------

def output_zero_point(model: bytes) -> int:
    graph = parse_tflite(model)
    return int(graph.tensors[graph.ops[0].outputs[0]].quantization.zero_point[0])


@pytest.mark.parametrize("padding, shape, calibration, zero_point", [
    (((1, 1), (1, 1)), (5, 7, 3), SYMMETRIC, 0),  # symmetric
    (((0, 2), (3, 1)), (4, 5, 2), POSITIVE, -128),  # asymmetric, padded with the lowest int8
    (((2, 1), (0, 3)), (1, 1, 1), NEGATIVE, 127),  # a 1x1 input, padded with the highest
])
def test_zero_padding_2d(padding, shape, calibration, zero_point):
    model = int8_model(lambda x: layers().ZeroPadding2D(padding)(x), [shape], calibration=calibration)
    assert op_types(model) == {"PAD"}
    assert output_zero_point(model) == zero_point
    assert_bit_exact(model)


def test_zero_padding_1d_pads_a_rank_3_tensor():
    model = int8_model(lambda x: layers().ZeroPadding1D((3, 2))(x), [(5, 3)], calibration=POSITIVE)
    graph = parse_tflite(model)
    assert [op.type for op in graph.ops] == ["PAD"]
    assert graph.tensors[graph.ops[0].outputs[0]].shape == (1, 10, 3)
    assert_bit_exact(model)


# ---- TRANSPOSE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("perm, shape", [
    ((2, 1, 3), (3, 5, 2)),
    ((3, 1, 2), (3, 5, 7)),
    ((1, 3, 2), (4, 2, 3)),
    ((3, 2, 1), (2, 3, 5)),
    ((2, 1), (5, 7)),  # a rank-3 tensor
])
def test_permute(perm, shape):
    model = int8_model(lambda x: layers().Permute(perm)(x), [shape], calibration=POSITIVE)
    assert "TRANSPOSE" in op_types(model)
    assert_bit_exact(model)


def test_rank_5_transpose_is_refused_naming_the_operator():
    model = int8_model(lambda x: layers().Permute((4, 1, 3, 2))(x), [(3, 2, 2, 2)])
    graph = parse_tflite(model)
    assert [op.type for op in graph.ops] == ["TRANSPOSE"]
    with pytest.raises(PlanError, match=r"operator 0 \(TRANSPOSE\): rank 5 .*not supported"):
        compile_plan(graph)


# ---- CONCATENATION --------------------------------------------------------------------------------

def int8_model_ranges(build, shapes, ranges, seed: int = 0) -> bytes:
    """int8_model with one calibration range per input."""
    from hwbench.generate.build import _quiet_tensorflow, _stderr_captured

    tf = _quiet_tensorflow()
    import keras

    rng = np.random.default_rng(seed)
    inputs = [keras.Input(shape=s, batch_size=1, name=f"in{i}") for i, s in enumerate(shapes)]
    model = keras.Model(inputs, build(*inputs))
    specs = [tf.TensorSpec((1, *s), tf.float32) for s in shapes]
    function = tf.function(lambda *xs: model(list(xs), training=False), input_signature=specs)
    data = [[rng.uniform(lo, hi, size=(1, *s)).astype(np.float32) for s, (lo, hi) in zip(shapes, ranges)]
            for _ in range(16)]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with _stderr_captured():
        return converter.convert()


CONCATS = {
    "axis-1, 2 inputs": (-1, [(3, 5, 2), (3, 5, 3)], [SYMMETRIC, POSITIVE]),
    "axis-1, 3 inputs": (-1, [(1, 1, 1), (1, 1, 4), (1, 1, 2)], [NEGATIVE, SYMMETRIC, (-3.0, 7.0)]),
    "axis 1, 2 inputs": (1, [(2, 3, 3), (5, 3, 3)], [POSITIVE, (0.0, 1.0)]),
    "axis 1, 3 inputs": (1, [(3, 5, 2), (1, 5, 2), (4, 5, 2)], [SYMMETRIC, POSITIVE, (-5.0, 3.0)]),
    "axis 2, 2 inputs": (2, [(3, 1, 2), (3, 4, 2)], [NEGATIVE, NEGATIVE]),
    "rank 3, axis -1": (-1, [(3, 1), (3, 4)], [POSITIVE, SYMMETRIC]),
    "rank 2, axis -1": (-1, [(4,), (3,)], [SYMMETRIC, NEGATIVE]),
    "16 inputs": (-1, [(2, 3, 1 + i % 3) for i in range(16)], [(-1.0 - i, 1.0 + 3 * i) for i in range(16)]),
}


@pytest.mark.parametrize("name", CONCATS)
def test_concatenate(name):
    axis, shapes, ranges = CONCATS[name]
    model = int8_model_ranges(lambda *xs: layers().Concatenate(axis=axis)(list(xs)), shapes, ranges)
    assert op_types(model) == {"CONCATENATION"}
    graph = parse_tflite(model)
    # TFLite's int8 CONCATENATION never rescales: the converter quantizes every input like the output.
    quantizations = {(float(graph.tensors[t].quantization.scale[0]), int(graph.tensors[t].quantization.zero_point[0]))
                     for t in [*graph.ops[0].inputs, *graph.ops[0].outputs]}
    assert len(quantizations) == 1
    assert_bit_exact(model)


def test_concatenation_of_17_inputs_is_refused():
    model = int8_model(lambda *xs: layers().Concatenate()(list(xs)), [(2, 1)] * 17)
    with pytest.raises(PlanError, match=r"operator 0 \(CONCATENATION\): 17 inputs"):
        compile_plan(parse_tflite(model))


def test_concatenation_of_differently_quantized_inputs_is_refused():
    model = int8_model(lambda a, b: layers().Concatenate()([a, b]), [(2, 3), (2, 4)])
    graph = parse_tflite(model)
    second = graph.tensors[graph.ops[0].inputs[1]]
    second.quantization = dataclasses.replace(second.quantization, scale=second.quantization.scale * 2)
    with pytest.raises(PlanError, match=r"operator 0 \(CONCATENATION\): input .* quantized as"):
        compile_plan(graph)


# ---- RESIZE_NEAREST_NEIGHBOR ----------------------------------------------------------------------

def resize_v2(size):
    return lambda v: tensorflow().image.resize(v, size, method="nearest")


def resize_v1(size, **flags):
    return lambda v: tensorflow().compat.v1.image.resize_nearest_neighbor(v, size, **flags)


RESIZES = {  # name: (resize, input shape, expected flags (align_corners, half_pixel_centers))
    "v2 up, odd sizes": (resize_v2((7, 11)), (3, 5, 2), (False, True)),
    "v2 down": (resize_v2((4, 5)), (9, 7, 3), (False, True)),
    "v2 1x1 input": (resize_v2((3, 2)), (1, 1, 2), (False, True)),
    "v1 plain": (resize_v1((8, 7)), (5, 3, 2), (False, False)),
    "v1 plain down": (resize_v1((3, 2)), (7, 5, 1), (False, False)),
    "v1 align_corners": (resize_v1((7, 11), align_corners=True), (3, 5, 2), (True, False)),
    "v1 align_corners 1x1 output": (resize_v1((1, 1), align_corners=True), (4, 3, 2), (True, False)),
    "v1 align_corners down": (resize_v1((5, 3), align_corners=True), (13, 9, 1), (True, False)),
    "v1 half_pixel_centers": (resize_v1((9, 4), half_pixel_centers=True), (4, 7, 3), (False, True)),
}


@pytest.mark.parametrize("name", RESIZES)
def test_resize_nearest(name):
    resize, shape, flags = RESIZES[name]
    model = int8_model(lambda x: layers().Lambda(resize)(x), [shape], calibration=POSITIVE)
    graph = parse_tflite(model)
    assert [op.type for op in graph.ops] == ["RESIZE_NEAREST_NEIGHBOR"]
    options = graph.ops[0].options
    assert (options["align_corners"], options["half_pixel_centers"]) == flags
    assert_bit_exact(model)


# ---- the kernels' own checks ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_plans():
    """One small plan per kernel of this file, compiled once."""
    return {
        "PAD": int8_model(lambda x: layers().ZeroPadding2D(((1, 0), (0, 2)))(x), [(2, 3, 2)]),
        "TRANSPOSE": int8_model(lambda x: layers().Permute((3, 1, 2))(x), [(2, 3, 2)]),
        "CONCATENATION": int8_model(lambda a, b: layers().Concatenate(axis=1)([a, b]), [(2, 3, 2), (1, 3, 2)]),
        "RESIZE_NEAREST_NEIGHBOR": int8_model(lambda x: layers().Lambda(resize_v2((3, 5)))(x), [(2, 3, 2)]),
    }


@pytest.mark.parametrize("kernel, field, value", [
    ("PAD", 0, 128), ("PAD", 1, 1), ("PAD", 2, -1), ("PAD", 3, 0x7FFFFFFF), ("PAD", 8, 1),
    ("TRANSPOSE", 0, 1), ("TRANSPOSE", 1, 4), ("TRANSPOSE", 2, -1), ("TRANSPOSE", 3, 0),
    ("CONCATENATION", 0, 2), ("CONCATENATION", 0, 4), ("CONCATENATION", 0, -1), ("CONCATENATION", 0, 3),
    ("RESIZE_NEAREST_NEIGHBOR", 0, 2), ("RESIZE_NEAREST_NEIGHBOR", 1, -1),
])
def test_bad_parameters_are_refused_by_the_kernel_when_the_plan_is_loaded(small_plans, kernel, field, value):
    model = small_plans[kernel]
    plan = compile_plan(parse_tflite(model))
    assert [op.kernel for op in plan.ops] == [kernel]
    with pytest.raises(PlanError, match="refused the plan: (bad parameters|shape mismatch)"):
        HostRuntime(with_params(plan.blob, 0, field, value), arena_size=plan.arena_size)
