"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: bit-exact with TFLite's reference kernels on
Keras-built int8 models, refused by name where the runtime does not follow, and the kernels refuse
plans whose parameters do not fit their operands.

What the TFLite side does, checked here:
- Convolutions requantize per output channel with fixed-point multipliers (a per-tensor filter
  scale is broadcast); the converter quantizes conv weights per channel on axis 0, depthwise on
  axis 3, and clamps a bias that would not fit to +-2^30 (the tiny-scale cases reach it).
- LiteRT's reference FULLY_CONNECTED requantizes in double precision and rounds once; fixed-point
  multipliers differ by 1 LSB on some inputs, so the Dense cases run more samples.
- The int32 accumulator wraps on overflow in TFLite's reference kernels: a Dense layer of 140,000
  inputs with positive weights overflows it, and the runtime gives the same (wrapped) bytes.
- The converter fuses ReLU, ReLU6 and clip(-1, 1) (RELU_N1_TO_1) into the op; it always gives a
  convolution a bias (zeros when Keras has none), so the bias-less convolutions here are made by
  removing it from the converted model; a Dense layer without bias has none.
"""

from __future__ import annotations


import numpy as np
import pytest

from hwbench.errors import PlanError
from hwbench.tflite_reader import parse_tflite
from firmware_runner.runtime.host import HostRuntime
from firmware_runner.compiler.plan import compile_plan
from keras_ops import assert_bit_exact, int8_model, op_types, with_params

POSITIVE, NEGATIVE, TINY = (0.0, 100.0), (-50.0, -10.0), (-0.001, 0.001)
FUSED = {None: "NONE", "relu": "RELU", "relu6": "RELU6"}


def keras():
    import keras

    return keras


def only_op(model: bytes, op_type: str, activation: str = "NONE"):
    """The model's single operator, checked to be `op_type` with `activation` fused into it."""
    assert op_types(model) == {op_type}
    graph = parse_tflite(model)
    op = graph.ops[0]
    assert op.options["fused_activation_function"] == activation
    return graph, op


def edited(model: bytes, edit) -> bytes:
    """The model with `edit(ModelT)` applied to its unpacked flatbuffer, packed again."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    unpacked = schema.ModelT.InitFromPackedBuf(model, 0)
    edit(unpacked)
    builder = flatbuffers.Builder(1024)
    builder.Finish(unpacked.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def without_bias(model: bytes) -> bytes:
    def edit(m):
        op = m.subgraphs[0].operators[0]
        op.inputs = np.asarray(op.inputs[:2], dtype=np.int32)  # TFLite's conv kernels refuse a -1 bias
    return edited(model, edit)


# ---- CONV_2D --------------------------------------------------------------------------------------

CONV_CASES = [
    # id, Conv2D arguments, input shape (HWC), int8_model arguments
    ("valid-s1", dict(filters=6, kernel_size=3), (7, 7, 3), {}),
    ("same-s1-relu", dict(filters=8, kernel_size=3, padding="same", activation="relu"), (8, 8, 4), {}),
    ("same-s2-relu6", dict(filters=5, kernel_size=3, strides=2, padding="same", activation="relu6"), (9, 9, 3), {}),
    ("valid-s2-even-kernel", dict(filters=4, kernel_size=4, strides=2), (10, 9, 3), {}),
    ("same-s3-rectangular", dict(filters=3, kernel_size=(3, 5), strides=3, padding="same"), (11, 10, 2), {}),
    ("same-s2x1-even-kernel", dict(filters=4, kernel_size=(2, 4), strides=(2, 1), padding="same"), (7, 8, 5), {}),
    ("valid-s3-odd", dict(filters=5, kernel_size=2, strides=3), (8, 10, 3), {}),
    ("kernel-as-large-as-input", dict(filters=7, kernel_size=(5, 4)), (5, 4, 3), {}),
    ("kernel-larger-than-input", dict(filters=3, kernel_size=5, padding="same", activation="relu"), (3, 3, 2), {}),
    ("1x1-input", dict(filters=5, kernel_size=3, strides=2, padding="same"), (1, 1, 7), {}),
    ("pointwise-odd-channels", dict(filters=7, kernel_size=1), (5, 5, 9), {}),
    ("grouped", dict(filters=6, kernel_size=3, padding="same", groups=3), (6, 6, 9), {}),
    ("input-zero-point-minus-128", dict(filters=4, kernel_size=3, padding="same", activation="relu"), (6, 6, 3),
     dict(calibration=POSITIVE)),
    ("input-zero-point-127", dict(filters=4, kernel_size=3, strides=2), (7, 7, 3), dict(calibration=NEGATIVE)),
    ("tiny-scales", dict(filters=4, kernel_size=3, padding="same"), (5, 5, 3), dict(calibration=TINY, weight_scale=1e-3)),
    ("bias-at-2^30", dict(filters=4, kernel_size=3), (6, 6, 3), dict(calibration=(-1e-5, 1e-5))),
    ("large-weights-saturating", dict(filters=8, kernel_size=3, padding="same", activation="relu6"), (6, 6, 64),
     dict(calibration=(-100.0, 100.0), weight_scale=100.0, samples=1)),
]


@pytest.mark.parametrize("case, conv, shape, kwargs", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv2d(case, conv, shape, kwargs):
    model = int8_model(lambda x: keras().layers.Conv2D(**conv)(x), [shape], **kwargs)
    graph, op = only_op(model, "CONV_2D", FUSED[conv.get("activation")])
    assert len(graph.tensors[op.inputs[1]].quantization.scale) == conv["filters"]  # per channel
    assert_bit_exact(model)
    assert_bit_exact(model, fast=False)
    kernel = conv["kernel_size"]
    # A 3 x 3 window over a 1 x 1 input is one tap in nine inside: the fast path would multiply padding.
    expected = "reference" if conv.get("groups", 1) > 1 or case == "1x1-input" else \
        "pointwise" if kernel == 1 else "im2col"
    assert compile_plan(graph, fast=True).ops[0].path == expected


def test_conv2d_fuses_clip_to_relu_n1_to_1():
    model = int8_model(lambda x: keras().ops.clip(keras().layers.Conv2D(4, 3, padding="same")(x), -1.0, 1.0),
                       [(6, 6, 3)])
    only_op(model, "CONV_2D", "RELU_N1_TO_1")
    assert_bit_exact(model)


def test_conv2d_without_bias_runs_as_with_a_zero_bias():
    # Keras' use_bias=False converts to a zero bias; TFLite's int8 CONV_2D refuses a model without
    # one (conv.cc: has_bias), so the runtime's bias-less path is checked against the zero bias.
    model = int8_model(lambda x: keras().layers.Conv2D(5, 3, padding="same", use_bias=False)(x), [(6, 6, 3)],
                       calibration=POSITIVE)
    graph, op = only_op(model, "CONV_2D")
    assert not graph.tensors[op.inputs[2]].data.any()
    assert_bit_exact(model)
    bare = parse_tflite(without_bias(model))
    assert len(bare.ops[0].inputs) == 2
    x = np.random.default_rng(1).integers(-128, 128, size=(1, 6, 6, 3), dtype=np.int8)
    expected = HostRuntime(compile_plan(graph)).run([x])
    assert np.array_equal(HostRuntime(compile_plan(bare)).run([x])[0], expected[0])


def test_conv2d_with_large_coherent_accumulators():
    # Equal positive (and negative) weights over 3x3x512 inputs that are all >= their zero point:
    # accumulators reach 127 * 255 * 4608 = 1.5e8 in magnitude, inside the window and at its borders.
    kernel = np.full((3, 3, 512, 3), 0.25, np.float32)
    kernel[..., 1] *= -1
    model = int8_model(lambda x: keras().ops.conv(x, kernel, padding="same"), [(5, 5, 512)], calibration=POSITIVE)
    only_op(model, "CONV_2D")
    assert_bit_exact(model)


def test_dilated_conv2d_is_refused_by_name():
    model = int8_model(lambda x: keras().layers.Conv2D(4, 3, dilation_rate=2)(x), [(8, 8, 3)])
    graph, op = only_op(model, "CONV_2D")
    assert op.options["dilation_h_factor"] == 2
    with pytest.raises(PlanError, match=r"operator 0 \(CONV_2D\): dilation 2x2 is not supported"):
        compile_plan(graph)


# ---- DEPTHWISE_CONV_2D ----------------------------------------------------------------------------

DEPTHWISE_CASES = [
    # id, DepthwiseConv2D arguments, input shape (HWC), int8_model arguments
    ("m1-same-s1-relu", dict(kernel_size=3, padding="same", activation="relu"), (8, 8, 5), {}),
    ("m2-valid-s2", dict(kernel_size=3, strides=2, depth_multiplier=2), (9, 9, 3), {}),
    ("m3-same-s3-relu6", dict(kernel_size=(3, 5), strides=3, padding="same", depth_multiplier=3, activation="relu6"),
     (10, 11, 2), {}),
    ("m2-same-s2-even-kernel", dict(kernel_size=4, strides=2, padding="same", depth_multiplier=2), (7, 8, 3), {}),
    ("kernel-as-large-as-input", dict(kernel_size=(4, 5), depth_multiplier=2), (4, 5, 3), {}),
    ("kernel-larger-than-input", dict(kernel_size=5, padding="same"), (2, 3, 4), {}),
    ("1x1-input", dict(kernel_size=3, strides=2, padding="same", depth_multiplier=3), (1, 1, 5), {}),
    ("input-zero-point-minus-128", dict(kernel_size=3, padding="same", activation="relu"), (6, 6, 7),
     dict(calibration=POSITIVE)),
    ("tiny-scales-m2", dict(kernel_size=3, depth_multiplier=2), (5, 5, 3), dict(calibration=TINY, weight_scale=1e-3)),
    ("large-weights-saturating", dict(kernel_size=3, padding="same"), (6, 6, 16),
     dict(calibration=(-100.0, 100.0), weight_scale=100.0, samples=1)),
    ("m1-valid-s2-two-groups", dict(kernel_size=3, strides=2), (9, 9, 8), {}),
    ("m1-same-s2-relu6-three-groups", dict(kernel_size=3, strides=2, padding="same", activation="relu6"), (10, 9, 12),
     {}),
    ("m1-same-5x5-partial-group", dict(kernel_size=5, padding="same"), (7, 7, 6), {}),
    ("m1-valid-1x3-s3", dict(kernel_size=(1, 3), strides=3), (5, 10, 4), {}),
]


@pytest.mark.parametrize("case, conv, shape, kwargs", DEPTHWISE_CASES, ids=[c[0] for c in DEPTHWISE_CASES])
def test_depthwise_conv2d(case, conv, shape, kwargs):
    model = int8_model(lambda x: keras().layers.DepthwiseConv2D(**conv)(x), [shape], **kwargs)
    graph, op = only_op(model, "DEPTHWISE_CONV_2D", FUSED[conv.get("activation")])
    multiplier = conv.get("depth_multiplier", 1)
    assert op.options["depth_multiplier"] == multiplier
    assert len(graph.tensors[op.inputs[1]].quantization.scale) == shape[2] * multiplier  # per channel
    assert_bit_exact(model)
    assert_bit_exact(model, fast=False)
    kernel = conv["kernel_size"]
    # A 5 x 5 window over a 2 x 3 input: under a quarter of its taps inside, the rest padding.
    expected = "reference" if multiplier > 1 or case == "kernel-larger-than-input" else \
        "dw_3x3" if kernel in (3, (3, 3)) else "dw_general"
    assert compile_plan(graph, fast=True).ops[0].path == expected


def test_depthwise_conv2d_without_bias_fuses_relu_n1_to_1():
    model = int8_model(lambda x: keras().ops.clip(keras().layers.DepthwiseConv2D(3, depth_multiplier=2)(x), -1.0, 1.0),
                       [(5, 5, 3)])
    model = without_bias(model)
    graph, op = only_op(model, "DEPTHWISE_CONV_2D", "RELU_N1_TO_1")
    assert len(op.inputs) == 2
    assert_bit_exact(model)


# ---- FULLY_CONNECTED ------------------------------------------------------------------------------

DENSE_CASES = [
    # id, Dense arguments, input shape, int8_model arguments
    ("per-channel", dict(units=64), (200,), {}),
    ("per-channel-relu-odd", dict(units=7, activation="relu"), (33,), {}),
    ("relu6", dict(units=10, activation="relu6"), (16,), dict(calibration=POSITIVE)),
    ("one-unit-per-tensor", dict(units=1), (9,), {}),
    ("no-bias", dict(units=5, use_bias=False), (12,), {}),
    ("rank-3-input", dict(units=5), (3, 7), {}),
    ("rank-4-input-relu", dict(units=4, activation="relu"), (2, 3, 6), {}),
    ("input-zero-point-127", dict(units=9), (20,), dict(calibration=NEGATIVE)),
    ("tiny-scales", dict(units=6), (10,), dict(calibration=TINY, weight_scale=1e-3)),
    ("bias-at-2^30", dict(units=8), (16,), dict(calibration=(-1e-6, 1e-6))),
    ("large-weights-saturating", dict(units=32, activation="relu"), (256,),
     dict(calibration=(-100.0, 100.0), weight_scale=100.0, samples=1)),
]


@pytest.mark.parametrize("case, dense, shape, kwargs", DENSE_CASES, ids=[c[0] for c in DENSE_CASES])
def test_fully_connected(case, dense, shape, kwargs):
    model = int8_model(lambda x: keras().layers.Dense(**dense)(x), [shape], **kwargs)
    graph, op = only_op(model, "FULLY_CONNECTED", FUSED[dense.get("activation")])
    assert len(graph.tensors[op.inputs[1]].quantization.scale) == dense["units"]  # TF 2.21: per channel
    assert (len(op.inputs) > 2 and op.inputs[2] != -1) == dense.get("use_bias", True)
    assert graph.tensors[op.outputs[0]].shape == (1, *shape[:-1], dense["units"])
    assert_bit_exact(model, samples=10)
    assert_bit_exact(model, samples=10, fast=False)
    assert compile_plan(graph, fast=True).ops[0].path == "dot"


def test_fully_connected_accumulator_overflow_wraps_as_in_tflite():
    # 140,000 inputs >= their zero point times weights of +-127: |acc| ~ 2.3e9 passes 2^31. TFLite's
    # int32 accumulator wraps, so the bytes are the wrapped ones, not a saturated +-1.
    weights = np.full((140_000, 2), 0.5, np.float32)
    weights[:, 1] = -0.5
    model = int8_model(lambda x: keras().ops.matmul(x, weights), [(140_000,)], calibration=POSITIVE)
    only_op(model, "FULLY_CONNECTED")
    assert assert_bit_exact(model).output_bytes == 2
    assert_bit_exact(model, fast=False)


# ---- plans the kernels refuse ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_plans():
    conv = int8_model(lambda x: keras().layers.Conv2D(4, 3, strides=2, padding="same")(x), [(6, 6, 3)])
    dw = int8_model(lambda x: keras().layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x), [(6, 6, 3)])
    fc = int8_model(lambda x: keras().layers.Dense(4)(x), [(8,)])
    dw1 = int8_model(lambda x: keras().layers.DepthwiseConv2D(3, padding="same")(x), [(6, 6, 4)])
    models = (("conv", conv), ("dw", dw), ("fc", fc))
    plans = {name: compile_plan(parse_tflite(m), fast=False) for name, m in models}
    fast = {f"{name}-fast": compile_plan(parse_tflite(m), fast=True) for name, m in (("conv", conv), ("dw", dw1), ("fc", fc))}
    return {**plans, **fast}


@pytest.mark.parametrize("plan, field, value, refusal", [
    ("conv", 0, 0, "bad parameters"),  # stride_h 0
    ("conv", 1, -2, "bad parameters"),  # stride_w negative
    ("conv", 0, 1 << 30, "bad parameters"),  # a stride that would reach past the input
    ("conv", 2, -1, "bad parameters"),  # pad_top negative
    ("conv", 3, 3, "bad parameters"),  # pad_left as large as the filter
    ("conv", 6, -129, "bad parameters"),  # act_min below int8
    ("conv", 7, 128, "bad parameters"),  # act_max above int8
    ("conv", 4, 5, "bad parameters"),  # filter_h other than the filter's
    ("conv", 8, 7, "bad parameters"),  # no such kernel path
    ("dw", 9, 3, "shape mismatch"),  # depth multiplier that does not fit the channels
    ("dw", 9, 0, "bad parameters"),  # depth multiplier 0
    ("dw", 2, 1 << 30, "bad parameters"),  # pad_top far past the filter
    ("fc", 1, -129, "bad parameters"),  # act_max below int8
    ("conv-fast", 4, 2, "shape mismatch"),  # a filter height the packed filter's rows do not hold
    ("conv-fast", 8, 0, "bad parameters"),  # the reference path, which has five operands
    ("conv-fast", 8, 2, "bad parameters"),  # pointwise for a 3 x 3 filter
    ("dw-fast", 9, 2, "bad parameters"),  # the fast paths take a depth multiplier of 1 only
    ("dw-fast", 8, 0, "bad parameters"),  # the reference path, which has five operands
    ("fc-fast", 2, 0, "bad parameters"),  # the reference path, which has four operands
])
def test_kernels_refuse_parameters_that_do_not_fit_when_the_plan_is_loaded(small_plans, plan, field, value,
                                                                           refusal):
    good = small_plans[plan]
    runtime = HostRuntime(good)
    runtime.run([np.zeros(runtime.io(0, 0).shape, np.int8)])  # the plan as compiled runs
    with pytest.raises(PlanError, match=f"refused the plan: {refusal}"):
        HostRuntime(with_params(good.blob, 0, field, value), arena_size=good.arena_size)
