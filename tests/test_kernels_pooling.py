"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN: the runtime's int8 kernels against TFLite's reference
kernels, bit for bit, on Keras models: SAME and VALID padding, strides, a pool as large as the input
(and larger), 1x1 inputs, odd channels, a fused RELU, extreme scales and zero points; MEAN over any
set of axes of rank 1-4 inputs (one at a time, as MCUNet's model zoo writes global pooling, several,
negative and repeated ones, all of them), keep_dims true and false, with different and with equal
input and output quantization; and the MEAN kernel's refusal of parameters that do not fit."""

from __future__ import annotations

import pytest

import numpy as np

from keras_ops import assert_bit_exact, int8_model, op_types, with_params

POOLS = {"AVERAGE_POOL_2D": "AveragePooling2D", "MAX_POOL_2D": "MaxPooling2D"}


@pytest.mark.parametrize("op", list(POOLS))
@pytest.mark.parametrize("shape, pool, strides, padding, calibration", [
    ((5, 4, 3), 2, None, "same", (-1.0, 1.0)),
    ((7, 6, 5), 3, 2, "valid", (0.0, 100.0)),  # zero point -128
    ((6, 7, 3), (2, 3), (1, 2), "same", (-0.001, 0.001)),  # tiny scale; odd total padding
    ((5, 4, 1), (5, 4), None, "valid", (-3.0, 0.1)),  # the pool is the whole input
    ((3, 2, 7), 5, 1, "same", (-1.0, 1.0)),  # the pool is larger than the input
    ((1, 1, 3), 2, None, "same", (-1.0, 1.0)),  # a 1x1 input
], ids=["same", "valid-stride", "rect-same", "whole-input", "larger-than-input", "1x1"])
def test_pool_is_bit_exact(op, shape, pool, strides, padding, calibration):
    import keras

    layer = getattr(keras.layers, POOLS[op])
    model = int8_model(lambda x: layer(pool, strides=strides, padding=padding)(x), [shape], calibration=calibration)
    assert op in op_types(model)
    assert_bit_exact(model)


@pytest.mark.parametrize("op", list(POOLS))
def test_pool_with_fused_relu_is_bit_exact(op):
    import keras
    from hwbench.tflite_reader import parse_tflite

    layer = getattr(keras.layers, POOLS[op])
    model = int8_model(lambda x: keras.layers.ReLU()(layer(2)(x)), [(6, 6, 3)], calibration=(-2.0, 1.0))
    assert [(o.type, o.options["fused_activation_function"]) for o in parse_tflite(model).ops] == [(op, "RELU")]
    assert_bit_exact(model)


@pytest.mark.parametrize("keepdims", [True, False])
@pytest.mark.parametrize("shape, calibration", [
    ((5, 4, 3), (-1.0, 1.0)),
    ((7, 7, 5), (0.0, 100.0)),
    ((16, 16, 2), (-0.001, 0.001)),
    ((1, 2, 9), (-3.0, 0.1)),
], ids=["small", "zp-128", "tiny-scale", "lopsided"])
def test_mean_is_bit_exact(shape, calibration, keepdims):
    import keras

    model = int8_model(lambda x: keras.layers.GlobalAveragePooling2D(keepdims=keepdims)(x), [shape],
                       calibration=calibration)
    assert "MEAN" in op_types(model)
    assert_bit_exact(model)


# (input shape without the batch, axes as given to the converter, keep_dims): the MEANs TFLite runs.
MEANS = [
    ((5, 4, 3), (1,), False), ((5, 4, 3), (2,), True), ((5, 4, 3), (1, 2), False), ((5, 4, 3), (1, 2), True),
    ((5, 4, 3), (3,), False), ((5, 4, 3), (1, 2, 3), True), ((5, 4, 3), (-3, 2), True),
    ((4, 4, 3), (2, 1, 2), False), ((5, 4, 3), (0, 1, 2, 3), False), ((5, 4, 3), (0,), False),
    ((5, 4, 3), (1, 3), False), ((3, 4, 6), (1, 3), True),  # averaged dims apart, either one the longer
    ((6, 7), (1,), False), ((6, 7), (-1,), True), ((7,), (1,), False), ((7,), (0, 1), True),
]
MEAN_IDS = [f"{len(shape) + 1}d-{'-'.join(map(str, axes))}-{'keep' if keep else 'drop'}" for shape, axes, keep in MEANS]


def mean_model(shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool, calibration=(-3.0, 0.5)) -> bytes:
    import keras

    return int8_model(lambda x: keras.ops.mean(x, axis=axes, keepdims=keep_dims), [shape], calibration=calibration)


def the_mean(model: bytes):
    """The model's one MEAN: its axes operand, keep_dims and input and output tensors."""
    from hwbench.tflite_reader import parse_tflite

    graph = parse_tflite(model)
    (mean,) = [o for o in graph.ops if o.type == "MEAN"]
    axes = tuple(int(a) for a in graph.tensors[mean.inputs[1]].data.ravel())
    return axes, bool(mean.options["keep_dims"]), graph.tensors[mean.inputs[0]], graph.tensors[mean.outputs[0]]


@pytest.mark.parametrize("shape, axes, keep_dims", MEANS, ids=MEAN_IDS)
def test_mean_over_any_axes_is_bit_exact(shape, axes, keep_dims):
    model = mean_model(shape, axes, keep_dims)
    got_axes, got_keep, x, y = the_mean(model)
    assert (got_axes, got_keep) == (axes, keep_dims)  # the converter kept the case asked for
    if x.size > y.size:  # (a mean over the batch of 1 alone is the identity, and quantized as one)
        assert x.quantization.scale[0] != y.quantization.scale[0]  # a real rescale, not a copy
    assert_bit_exact(model)


def test_global_pooling_as_two_single_axis_means_is_bit_exact():
    """MCUNet's model zoo pools globally with two MEANs over one axis each (width, then height)."""
    import keras
    from hwbench.tflite_reader import parse_tflite

    def build(x):
        x = keras.layers.Conv2D(8, 3, activation="relu")(x)
        return keras.layers.Dense(4)(keras.ops.mean(keras.ops.mean(x, axis=2), axis=1))

    model = int8_model(build, [(9, 9, 3)], calibration=(-1.0, 2.0))
    graph = parse_tflite(model)
    means = [(tuple(graph.tensors[o.inputs[1]].data.ravel()), graph.tensors[o.outputs[0]].shape)
             for o in graph.ops if o.type == "MEAN"]
    assert means == [((2,), (1, 7, 8)), ((1,), (1, 8))]
    assert_bit_exact(model)


def with_mean_output_quantized_like_its_input(model: bytes) -> bytes:
    """The converter never gives a MEAN equal input and output quantization; edit the flatbuffer so
    it does (TFLite's older kernels took another path then)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    subgraph = m.subgraphs[0]
    for op in subgraph.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if schema.BuiltinOperator.MEAN in (code.builtinCode, code.deprecatedBuiltinCode):
            source, target = subgraph.tensors[op.inputs[0]].quantization, subgraph.tensors[op.outputs[0]].quantization
            target.scale, target.zeroPoint = list(source.scale), list(source.zeroPoint)
    builder = flatbuffers.Builder(0)
    builder.Finish(m.Pack(builder), b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("shape, axes, keep_dims, calibration", [
    ((5, 4, 3), (1, 2), True, (-3.0, 0.1)), ((7, 7, 5), (1, 2), False, (0.0, 100.0)),
    ((5, 4, 3), (1,), False, (-3.0, 0.1)), ((5, 4, 3), (3,), True, (0.0, 100.0)), ((6, 7), (-1,), False, (-1.0, 1.0)),
], ids=["4d-1-2-keep-lopsided", "4d-1-2-drop-zp-128", "4d-1-drop", "4d-3-keep", "3d-last-drop"])
def test_mean_with_equal_quantization_is_bit_exact(shape, axes, keep_dims, calibration):
    model = with_mean_output_quantized_like_its_input(mean_model(shape, axes, keep_dims, calibration))
    got_axes, got_keep, x, y = the_mean(model)
    assert (got_axes, got_keep) == (axes, keep_dims)
    assert (x.quantization.scale[0], x.quantization.zero_point[0]) == (y.quantization.scale[0], y.quantization.zero_point[0])
    assert_bit_exact(model)


@pytest.mark.parametrize("field, value, refusal", [
    (2, 0, "bad parameters"),  # no axis averaged
    (2, 1 << 4, "bad parameters"),  # an axis past the input's rank 4
    (2, 0b0010, "shape mismatch"),  # height only, where the output is (1, 3)
    (1, 31, "bad parameters"),  # a shift past TFLite's range
    (0, -1, "bad parameters"),  # a negative multiplier
])
def test_mean_kernel_refuses_parameters_that_do_not_fit(field, value, refusal):
    from hwbench.errors import PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.host import HostRuntime

    good = compile_plan(parse_tflite(mean_model((5, 4, 3), (1, 2), False)))
    x = np.zeros((1, 5, 4, 3), np.int8)
    HostRuntime(good).run([x])  # the plan as compiled runs
    with pytest.raises(PlanError, match=f"refused the plan: {refusal}"):  # when it is loaded, not run
        HostRuntime(with_params(good.blob, 0, field, value), arena_size=good.arena_size)
