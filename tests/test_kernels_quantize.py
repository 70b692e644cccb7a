"""QUANTIZE (float32 -> int8 and int8 -> int8) and DEQUANTIZE (int8 -> float32) against TFLite's
reference kernels, bit for bit: float I/O models, float inputs TFLite's own conversion mangles
(NaN, infinities, quotients beyond int32), requantizations the converter emits and ones with
rewritten scales; and what the lowering refuses.

Also the model and plan surgery test_kernels_activations.py shares: rewrite a tensor's
quantization, cut a model down to one operator, corrupt an op's parameter struct.
"""

from __future__ import annotations


import numpy as np
import pytest

from keras_ops import assert_bit_exact, int8_model, op_types, with_params

CALIBRATIONS = [(-1.0, 1.0), (0.0, 100.0), (-0.001, 0.001), (-50.0, 50.0), (-100.0, 1.0), (-5.0, -4.0)]


# --- surgery -------------------------------------------------------------------------------------

def _repack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _unpack(model: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(model, 0)


def with_quantization(model: bytes, changes: dict[int, tuple[float, int]]) -> bytes:
    """The model with tensor -> (scale, zero point) rewritten: scales no converter would choose."""
    m = _unpack(model)
    for tensor, (s, zp) in changes.items():
        q = m.subgraphs[0].tensors[tensor].quantization
        q.scale, q.zeroPoint = [float(s)], [int(zp)]
    return _repack(m)


def single_op(model: bytes, index: int) -> bytes:
    """Operator `index` of the model alone, its inputs and outputs made the model's: a requantize
    the converter only emits between other ops, tested without them."""
    m = _unpack(model)
    sg = m.subgraphs[0]
    op = sg.operators[index]
    sg.operators, sg.inputs, sg.outputs = [op], list(op.inputs), list(op.outputs)
    m.signatureDefs = None
    return _repack(m)


def op_indices(model: bytes, op_type: str) -> list[int]:
    from hwbench.tflite_reader import parse_tflite

    return [i for i, op in enumerate(parse_tflite(model).ops) if op.type == op_type]


def io_tensors(model: bytes, index: int = 0) -> tuple[int, int]:
    from hwbench.tflite_reader import parse_tflite

    op = parse_tflite(model).ops[index]
    return op.inputs[0], op.outputs[0]


def run_plan(blob: bytes, model: bytes) -> None:
    """Runs a (corrupted) plan on zeros through the host runtime; PlanError if a kernel refuses."""
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.runtime.host import HostRuntime

    graph = parse_tflite(model)
    HostRuntime(blob).run([np.zeros(graph.tensors[i].shape, graph.tensors[i].dtype) for i in graph.inputs])


# --- float32 -> int8 -> float32 ------------------------------------------------------------------

@pytest.mark.parametrize("calibration", CALIBRATIONS)
def test_float_io_quantize_and_dequantize_are_bit_exact(calibration):
    """verify's float inputs reach 10% past the quantized range, so both ends saturate."""
    import keras

    model = int8_model(lambda x: keras.layers.Reshape((256,))(x), [(16, 16)], float_io=True, calibration=calibration)
    assert op_types(model) == {"QUANTIZE", "RESHAPE", "DEQUANTIZE"}
    assert_bit_exact(model)


def _special_floats(s: np.float32) -> np.ndarray:
    """Exact halves of the scale and their float neighbours (rounding), and the values TFLite's
    float -> int32 conversion gets wrong (NaN, infinities, quotients beyond int32)."""
    k = np.arange(-300, 300, dtype=np.float32) + np.float32(0.5)
    halves = k * s
    values = [np.array([np.nan, -np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, -1e-45, 0.0, -0.0, 1e10, -1e10,
                        2.0 ** 31, -2.0 ** 31, 2.0 ** 31 * s, -(2.0 ** 31) * s, 2.0 ** 32 * s, -(2.0 ** 32) * s],
                       dtype=np.float32),
              halves, np.nextafter(halves, np.float32(np.inf)), np.nextafter(halves, np.float32(-np.inf)),
              np.arange(-300, 300, dtype=np.float32) * s]
    return np.concatenate(values)  # NaN first


@pytest.mark.parametrize("calibration", [(-1.0, 1.0), (-100.0, 1.0), (-1e-30, 1e-30)])  # zero point < 0, > 0, 0
def test_quantize_special_floats_as_the_interpreter_does(calibration):
    """NaN and out-of-int32 quotients give 127 when the zero point is negative, -128 otherwise
    (x86's conversion to INT32_MIN, then TFLite's wrapping int32 add); DEQUANTIZE then maps them back."""
    import keras
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.runtime.host import HostRuntime
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.reference import reference_run

    model = int8_model(lambda x: keras.layers.Reshape((4096,))(x), [(64, 64)], float_io=True, calibration=calibration)
    graph = parse_tflite(model)
    quantize = next(op for op in graph.ops if op.type == "QUANTIZE")
    q = graph.tensors[quantize.outputs[0]].quantization
    values = _special_floats(np.float32(q.scale[0]))
    x = np.zeros(4096, np.float32)
    x[:len(values)] = values
    x = x.reshape(1, 64, 64)
    plan = compile_plan(graph)
    outputs, layers = HostRuntime(plan).run_layers([x])
    expected_outputs, expected = reference_run(model, graph, [x], all_tensors=True)
    got = next(layer[quantize.outputs[0]] for layer in layers if quantize.outputs[0] in layer).reshape(-1)
    want = expected[quantize.outputs[0]].reshape(-1)
    assert np.array_equal(got, want), [(x[0, i], want[i], got[i]) for i in np.flatnonzero(got != want)[:8]]
    assert np.array_equal(outputs[0].view(np.uint32), expected_outputs[0].view(np.uint32))
    assert got[0] == (127 if int(q.zero_point[0]) < 0 else -128)  # NaN


# --- int8 -> int8 --------------------------------------------------------------------------------

def _requantizing_model(kind: str, calibration: tuple[float, float]) -> bytes:
    """Models whose conversion inserts int8 -> int8 QUANTIZE: a CONCATENATION of fixed-scale
    outputs (LOGISTIC 1/256, TANH 1/128), or of one tensor at two scales."""
    import keras

    layers = keras.layers

    def build(x):
        if kind == "fixed scales":
            return layers.Concatenate()([layers.Activation("sigmoid")(x), layers.Activation("tanh")(x)])
        return [layers.Concatenate()([x, layers.ReLU()(x)]), layers.Concatenate()([x, layers.Add()([x, x])])]

    return int8_model(build, [(16, 16, 4)], calibration=calibration)


def _one_requantize() -> bytes:
    model = _requantizing_model("two scales", (-1.0, 1.0))
    return single_op(model, op_indices(model, "QUANTIZE")[0])


@pytest.mark.parametrize("calibration", [(-1.0, 1.0), (0.0, 100.0), (-1e-6, 1e-6), (-50.0, 50.0)])
@pytest.mark.parametrize("kind", ["fixed scales", "two scales"])
def test_requantize_the_converter_emits_is_bit_exact(kind, calibration):
    from hwbench.tflite_reader import parse_tflite

    model = _requantizing_model(kind, calibration)
    found = op_indices(model, "QUANTIZE")
    assert found, op_types(model)
    for index in found:
        alone = single_op(model, index)
        graph = parse_tflite(alone)
        x, y = io_tensors(alone)
        assert graph.tensors[x].dtype == graph.tensors[y].dtype == "int8"
        assert_bit_exact(alone)


def test_requantize_with_rewritten_scales_is_bit_exact():
    """Scale ratios from 2^-20 to 2^29 (shift -21 .. 30, the multiply overflowing int32 as TFLite's
    does at the top), any zero points."""
    model = _one_requantize()
    x, y = io_tensors(model)
    rng = np.random.default_rng(7)
    for _ in range(40):
        s_in = 10 ** rng.uniform(-6, 2)
        s_out = s_in / 2 ** rng.uniform(-20, 29.9)
        assert_bit_exact(with_quantization(model, {x: (s_in, int(rng.integers(-128, 128))),
                                                   y: (s_out, int(rng.integers(-128, 128)))}), samples=2)


# --- refusals ------------------------------------------------------------------------------------

def test_requantize_by_two_to_the_30_or_more_is_refused():
    """TFLite's interpreter shifts by 31 bits or more there (undefined in C++); hwbench refuses."""
    from hwbench.errors import PlanError
    from firmware_runner.runtime.verify import verify_model

    model = _one_requantize()
    x, y = io_tensors(model)
    with pytest.raises(PlanError, match=r"operator 0 \(QUANTIZE\): requantization multiplier [0-9.e+]+ \(2\^3[0-9]"):
        verify_model(with_quantization(model, {x: (1.0, 0), y: (1.0 / 2 ** 31, 0)}))


def test_per_channel_quantize_is_refused_naming_the_operator():
    import keras
    from hwbench.errors import PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan

    graph = parse_tflite(int8_model(lambda x: keras.layers.Reshape((8,))(x), [(2, 4)], float_io=True))
    index = next(i for i, op in enumerate(graph.ops) if op.type == "QUANTIZE")
    q = graph.tensors[graph.ops[index].outputs[0]].quantization
    q.scale, q.zero_point = np.repeat(q.scale, 8), np.repeat(q.zero_point, 8)
    with pytest.raises(PlanError, match=rf"operator {index} \(QUANTIZE\): output tensor .* per-tensor quantization"):
        compile_plan(graph)


@pytest.mark.parametrize("shift", [31, -32, 0x7FFFFFFF])
def test_kernel_refuses_a_shift_out_of_range(shift):
    from hwbench.errors import PlanError
    from hwbench.tflite_reader import parse_tflite
    from firmware_runner.compiler.plan import compile_plan

    model = _one_requantize()
    blob = compile_plan(parse_tflite(model)).blob
    run_plan(blob, model)
    with pytest.raises(PlanError, match="bad parameters"):
        run_plan(with_params(blob, 0, 1, shift), model)  # quantize_params.shift
