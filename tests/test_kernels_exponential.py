"""SOFTMAX, LOG_SOFTMAX, LOGISTIC and TANH: bit-exact with TFLite's reference kernels on Keras-built
int8 models, and refused by name where the runtime does not follow.

What the TFLite side does, checked here: its reference SOFTMAX and LOG_SOFTMAX work in fixed point
(gemmlowp's exp and log), not through the float exp table of its optimized kernels; LOGISTIC and
TANH look inputs up in a table TFLite fills in float32 with the C library's expf and tanhf. The
converter forces the outputs' quantization (softmax 1/256 and -128, log-softmax 16/256 and 127,
logistic 1/256 and -128, tanh 1/128 and 0) and never folds a multiplication into softmax's beta:
beta != 1 is made here by editing the converted model. TFLite's reference softmax aborts the process
when a row's exps add up to 512 or more (e.g. 1000 equal inputs); the runtime writes -128 there.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hwbench.errors import PlanError
from hwbench.tflite_reader import parse_tflite
from firmware_runner.runtime.host import HostRuntime
from firmware_runner.compiler.plan import compile_plan
from firmware_runner.runtime.reference import reference_run
from keras_ops import assert_bit_exact, int8_model, op_types, with_params

SYMMETRIC, POSITIVE, TINY, WIDE = (-1.0, 1.0), (0.0, 100.0), (-0.001, 0.001), (-50.0, 50.0)
HUGE = (-5000.0, 5000.0)  # input scale ~39: softmax's multiplier reaches TFLite's cap (left shift 31)


def softmax(x):
    import keras

    return keras.layers.Softmax()(x)


def log_softmax(x):
    import keras
    import tensorflow as tf

    return keras.layers.Lambda(lambda v: tf.nn.log_softmax(v))(x)


def sigmoid(x):
    import keras

    return keras.layers.Activation("sigmoid")(x)


def tanh(x):
    import keras

    return keras.layers.Activation("tanh")(x)


BUILDERS = {"SOFTMAX": softmax, "LOG_SOFTMAX": log_softmax, "LOGISTIC": sigmoid, "TANH": tanh}


def with_softmax_beta(model: bytes, beta: float) -> bytes:
    """The model with every SOFTMAX's beta set to `beta` (the converter always writes 1)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(model, 0)
    for op in m.subgraphs[0].operators:
        if isinstance(op.builtinOptions, schema.SoftmaxOptionsT):
            op.builtinOptions.beta = beta
    builder = flatbuffers.Builder(len(model))
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def assert_same_outputs_as_tflite(model: bytes, inputs: list[np.ndarray]) -> np.ndarray:
    """Run `inputs` through the host runtime and TFLite's reference; the runtime's outputs."""
    graph = parse_tflite(model)
    expected, _ = reference_run(model, graph, inputs)
    got = HostRuntime(compile_plan(graph)).run(inputs)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e.reshape(g.shape))
    return got[0]


# ---- bit-exact on converted models ----------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:You are using a softmax over axis")  # Keras, on the one-element case
@pytest.mark.parametrize("op", sorted(BUILDERS))
@pytest.mark.parametrize("shape, calibration", [
    ((10,), SYMMETRIC),  # a vector
    ((2, 3, 7), POSITIVE),  # 4-D, odd last axis; input zero point -128
    ((3, 1, 5), TINY),  # a tiny input scale: softmax sees near-equal inputs
    ((4, 9), WIDE),  # a wide input scale: tables saturate
    ((1, 1, 1), SYMMETRIC),  # one element
])
def test_bit_exact(op, shape, calibration):
    model = int8_model(BUILDERS[op], [shape], calibration=calibration)
    assert op_types(model) == {op}
    assert_bit_exact(model)


@pytest.mark.parametrize("op, calibration", [("SOFTMAX", (-4.0, 4.0)), ("LOG_SOFTMAX", WIDE)])
def test_a_thousand_classes(op, calibration):
    # Random inputs keep each row's sum of exps well under 512, where TFLite's softmax would abort.
    model = int8_model(BUILDERS[op], [(1000,)], calibration=calibration)
    assert op_types(model) == {op}
    assert_bit_exact(model)


@pytest.mark.parametrize("op", ["SOFTMAX", "LOG_SOFTMAX"])
def test_input_scale_past_the_multiplier_cap(op):
    # beta * scale * 2^26 >= 2^31 - 1: only a row's maxima count (diff_min 0).
    model = int8_model(BUILDERS[op], [(3, 7)], calibration=HUGE)
    assert_bit_exact(model, samples=2)
    x = np.array([[[3, 3, -5, 2, 3, 0, 1], [-128] * 7, [127, -128, 127, 126, 0, 0, 0]]], np.int8)
    assert_same_outputs_as_tflite(model, [x])


@pytest.mark.parametrize("beta, calibration", [(3.0, SYMMETRIC), (0.25, POSITIVE), (0.001, SYMMETRIC),
                                               (100.0, WIDE)])
def test_softmax_beta(beta, calibration):
    model = with_softmax_beta(int8_model(softmax, [(2, 11)], calibration=calibration), beta)
    graph = parse_tflite(model)
    assert [(op.type, op.options["beta"]) for op in graph.ops] == [("SOFTMAX", np.float32(beta))]
    assert_bit_exact(model)


@pytest.mark.parametrize("op, calibration", [("LOGISTIC", SYMMETRIC), ("LOGISTIC", WIDE), ("TANH", POSITIVE),
                                             ("TANH", (-3.0, 0.5)), ("TANH", TINY)])
def test_every_input_value_of_the_table(op, calibration):
    model = int8_model(BUILDERS[op], [(256,)], calibration=calibration)
    out = assert_same_outputs_as_tflite(model, [np.arange(-128, 128, dtype=np.int8).reshape(1, 256)])
    if calibration == WIDE:  # saturated at both ends
        assert out.min() == -128 and out.max() == 127


@pytest.mark.parametrize("op", ["SOFTMAX", "LOG_SOFTMAX"])
def test_rows_of_every_difference(op):
    """Rows whose differences to their maximum (127) reach every value 0 to -255 between them, a row
    of equal values and one alternating between the extremes."""
    model = int8_model(BUILDERS[op], [(10, 33)], calibration=(-6.0, 6.0))
    values = np.empty((10, 33), np.int64)
    values[:8, 0] = 127
    values[:8, 1:] = 127 - np.arange(256).reshape(8, 32)
    values[8] = -3
    values[9] = np.where(np.arange(33) % 2, 127, -128)
    assert_same_outputs_as_tflite(model, [values.astype(np.int8).reshape(1, 10, 33)])


def test_logistic_and_tanh_may_write_over_their_input():
    model = int8_model(lambda x: tanh(sigmoid(x)), [(5, 6)], calibration=WIDE)
    graph = parse_tflite(model)
    plan = compile_plan(graph)
    assert [op.kernel for op in plan.ops] == ["LOGISTIC", "TANH"]
    offsets = [plan.places[t].offset for t in (graph.ops[0].inputs[0], *(op.outputs[0] for op in graph.ops))]
    assert offsets == [offsets[0]] * 3  # the planner put both outputs over the input: in place
    assert_bit_exact(model)


def test_softmax_row_past_tflite_sum_limit_is_all_lowest():
    # 1000 equal inputs: each probability 1/1000, under half a step of 1/256. TFLite's reference
    # aborts the process (TFLITE_CHECK) on such a row; the runtime writes what exact arithmetic
    # rounds to, and the other rows as TFLite does (compared on an input without the bad row).
    model = int8_model(softmax, [(2, 1000)], calibration=SYMMETRIC)
    x = np.random.default_rng(5).integers(-128, 128, (1, 2, 1000)).astype(np.int8)
    expected = assert_same_outputs_as_tflite(model, [x])
    x[0, 0] = 7
    out = HostRuntime(compile_plan(parse_tflite(model))).run([x])[0]
    assert (out[0, 0] == -128).all()
    np.testing.assert_array_equal(out[0, 1], expected[0, 1])


# ---- refused ------------------------------------------------------------------------------------

def test_log_softmax_over_4096_classes_is_refused_naming_the_operator():
    model = int8_model(log_softmax, [(4096,)])
    with pytest.raises(PlanError, match=r"operator 0 \(LOG_SOFTMAX\): a last axis of 4096 .*not supported"):
        compile_plan(parse_tflite(model))


@pytest.fixture(scope="module")
def small_models():
    """One small model per kernel of this file, converted once."""
    return {op: int8_model(build, [(2, 5)], calibration=SYMMETRIC) for op, build in BUILDERS.items()}


@pytest.mark.parametrize("op, scale, zero_point, message", [
    ("SOFTMAX", 1 / 128, -128, "output quantization"),
    ("SOFTMAX", 1 / 256, 0, "output quantization"),
    ("LOG_SOFTMAX", 1 / 16, 0, "output quantization"),
    ("LOGISTIC", 1 / 255, -128, "output scale"),
])
def test_output_quantization_tflite_refuses_is_refused(small_models, op, scale, zero_point, message):
    graph = parse_tflite(small_models[op])
    out = graph.tensors[graph.ops[0].outputs[0]]
    out.quantization = dataclasses.replace(out.quantization, scale=np.array([scale], np.float32),
                                           zero_point=np.array([zero_point]))
    with pytest.raises(PlanError, match=rf"operator 0 \({op}\): {message}"):
        compile_plan(graph)


def test_softmax_beta_too_small_for_the_input_scale_is_refused(small_models):
    graph = parse_tflite(with_softmax_beta(small_models["SOFTMAX"], 1e-7))
    with pytest.raises(PlanError, match=r"operator 0 \(SOFTMAX\): beta .* must exceed 1"):
        compile_plan(graph)


# ---- the kernels' own checks ----------------------------------------------------------------------

@pytest.mark.parametrize("op, field, value", [
    ("SOFTMAX", 0, 0), ("SOFTMAX", 0, -(1 << 30)), ("SOFTMAX", 1, -1), ("SOFTMAX", 1, 32), ("SOFTMAX", 2, 1),
    ("LOG_SOFTMAX", 0, (1 << 30) - 1), ("LOG_SOFTMAX", 1, 32), ("LOG_SOFTMAX", 2, 0), ("LOG_SOFTMAX", 3, -1),
    ("LOG_SOFTMAX", 3, 32), ("LOG_SOFTMAX", 4, 1),
])
def test_bad_parameters_are_refused_by_the_kernel_when_the_plan_is_loaded(small_models, op, field, value):
    plan = compile_plan(parse_tflite(small_models[op]))
    assert [p.kernel for p in plan.ops] == [op]
    with pytest.raises(PlanError, match="refused the plan: bad parameters"):
        HostRuntime(with_params(plan.blob, 0, field, value), arena_size=plan.arena_size)


@pytest.mark.parametrize("op", ["SOFTMAX", "LOG_SOFTMAX"])
@pytest.mark.parametrize("left_shift", [0, 31])
def test_any_valid_parameters_run(small_models, op, left_shift):
    """Parameters TFLite would never compute but the kernel accepts still give a result."""
    plan = compile_plan(parse_tflite(small_models[op]))
    blob = with_params(with_params(plan.blob, 0, 1, left_shift), 0, 0, 0x7FFFFFFF)
    runtime = HostRuntime(blob, arena_size=plan.arena_size)
    runtime.run([np.arange(-128, 128, 26, dtype=np.int8).reshape(1, 2, 5)])
