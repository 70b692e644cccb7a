"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN: the runtime's int8 kernels against TFLite's reference
kernels, bit for bit, on Keras models: SAME and VALID padding, strides, a pool as large as the input
(and larger), 1x1 inputs, odd channels, a fused RELU, extreme scales and zero points; MEAN (global
average pooling) with keepdims true and false, with different and with equal input and output
quantization."""

from __future__ import annotations

import pytest

from keras_ops import assert_bit_exact, int8_model, op_types

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


@pytest.mark.parametrize("keepdims", [True, False])
@pytest.mark.parametrize("shape, calibration", [((5, 4, 3), (-3.0, 0.1)), ((7, 7, 5), (0.0, 100.0))],
                         ids=["lopsided", "zp-128"])
def test_mean_with_equal_quantization_is_bit_exact(shape, calibration, keepdims):
    import keras
    from hwbench.tflite_reader import parse_tflite

    model = with_mean_output_quantized_like_its_input(int8_model(
        lambda x: keras.layers.GlobalAveragePooling2D(keepdims=keepdims)(x), [shape], calibration=calibration))
    graph = parse_tflite(model)
    (mean,) = [o for o in graph.ops if o.type == "MEAN"]
    q_in, q_out = (graph.tensors[t].quantization for t in (mean.inputs[0], mean.outputs[0]))
    assert (q_in.scale[0], q_in.zero_point[0]) == (q_out.scale[0], q_out.zero_point[0])
    assert_bit_exact(model)


def test_mean_over_other_axes_names_the_operator():
    import keras
    from hwbench.errors import PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan

    model = int8_model(lambda x: keras.ops.mean(x, axis=1), [(4, 4, 3)])
    with pytest.raises(PlanError, match=r"operator 0 \(MEAN\): mean over axes \(1,\) is not supported"):
        compile_plan(parse_tflite(model))
