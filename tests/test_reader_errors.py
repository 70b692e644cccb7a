"""Bad model files: each kind is refused with one ModelError naming the file and the problem, int8
models with a float interface and float models are read, and a fuzz over truncated and mutated real models shows
that nothing but a HwbenchError ever leaves the reader, in bounded time."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError, ModelError
from hwbench.graph import Graph
from hwbench.tflite_reader import parse_tflite, read_tflite
from tests.conftest import MLPERF_TINY, NEEDS_SHARED, SHARED_MODELS

TINY_INPUT = (1, 8, 8, 1)
# The converter warns that a float32 model input has no statistics; it needs none here.
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")


# --- helpers -------------------------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path, *phrases: str) -> str:
    """The ModelError `read_tflite(path)` raises; its message names the file and has every phrase."""
    with pytest.raises(ModelError) as info:
        read_tflite(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    problem = message[len(f"{path}: "):]  # (the test's folder name must not count as the phrase)
    for phrase in phrases:
        assert phrase in problem, message
    return problem


def subgraph_count(data: bytes) -> int:
    return schema.Model.GetRootAsModel(data, 0).SubgraphsLength()


def repacked(data: bytes, change: Callable[[schema.ModelT], None]) -> bytes:
    """`data` unpacked with the schema's object API, changed, and packed again."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    change(model)
    builder = flatbuffers.Builder(len(data))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# --- models --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf(tmp_path_factory):
    """TensorFlow, imported only when a test converts a model; Keras writes to a temporary home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras")))
        import tensorflow

        yield tensorflow


@pytest.fixture(scope="module")
def tiny(tf):
    """A tiny Conv2D → Flatten → Dense Keras model."""
    inputs = tf.keras.Input(TINY_INPUT[1:], batch_size=1)
    x = tf.keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    x = tf.keras.layers.Flatten()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(x))


def convert(tf, function, int8: bool = False, int8_io: bool = False) -> bytes:
    """`.tflite` bytes of a float function of one TINY_INPUT tensor: float, or int8 with float or int8 I/O."""
    concrete = tf.function(function).get_concrete_function(tf.TensorSpec(TINY_INPUT, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random(TINY_INPUT, dtype=np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def generated_bytes(generated) -> dict[str, bytes]:
    """Two generated full-int8 models with int8 input and output (conftest's population), so nothing
    here needs ../shared."""
    out, entries = generated
    int8_io = [entry for entry in entries if entry["architecture"].get("io", "int8") == "int8"]
    return {entry["file"]: (out / entry["file"]).read_bytes() for entry in int8_io[:2]}


@pytest.fixture(scope="module")
def model_bytes(generated_bytes) -> bytes:
    return next(iter(generated_bytes.values()))


# --- each bad input, one test --------------------------------------------------------------------


def test_empty_file(tmp_path):
    refused(write(tmp_path, "empty.tflite", b""), "empty file")


def test_random_bytes(tmp_path):
    data = np.random.default_rng(1).bytes(5000)
    refused(write(tmp_path, "noise.tflite", data), "not a TFLite model", "TFL3")


def test_random_bytes_behind_a_tflite_identifier(tmp_path):
    data = bytearray(np.random.default_rng(2).bytes(5000))
    data[4:8] = b"TFL3"
    refused(write(tmp_path, "noise.tflite", bytes(data)), "corrupt or truncated")


@pytest.mark.parametrize("cut", [3, 8, 64, 1000, 0.5, -100, -1], ids=lambda cut: f"cut{cut}")
def test_truncated_model(tmp_path, model_bytes, cut):
    end = int(len(model_bytes) * cut) if isinstance(cut, float) else cut
    refused(write(tmp_path, "cut.tflite", model_bytes[:end]), "truncated")


def test_truncated_mlperf_model(tmp_path):
    file = SHARED_MODELS / MLPERF_TINY["vww"][0]
    if not file.exists():
        pytest.skip(NEEDS_SHARED)
    data = file.read_bytes()
    for end in (5, 100, len(data) // 3, len(data) - 4):
        message = refused(write(tmp_path, f"vww_{end}.tflite", data[:end]), "truncated")
        assert "Error" not in message  # said in words, not as a Python exception


def test_float_model_is_read(tmp_path, tf, tiny):
    """Its memory is a fair question; that the hwbench runtime cannot run it is the plan compiler's to say."""
    graph = read_tflite(write(tmp_path, "float.tflite", convert(tf, tiny)))
    assert {graph.tensors[op.outputs[0]].dtype for op in graph.ops} == {"float32"}
    assert graph_cost(graph).macs > 0


@pytest.mark.parametrize("int8_io", [False, True], ids=["float-io", "int8-io"])
def test_int8_model_reads_with_float_or_int8_interface(tmp_path, tf, tiny, int8_io):
    graph = read_tflite(write(tmp_path, "int8.tflite", convert(tf, tiny, int8=True, int8_io=int8_io)))
    inner = [op.type for op in graph.ops if op.type not in ("QUANTIZE", "DEQUANTIZE")]
    assert inner == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    model_input, model_output = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    if int8_io:
        assert (model_input.dtype, model_output.dtype) == ("int8", "int8")
    else:  # float in and out, through QUANTIZE and DEQUANTIZE at the edges
        assert [graph.ops[0].type, graph.ops[-1].type] == ["QUANTIZE", "DEQUANTIZE"]
        assert graph.ops[0].inputs == graph.inputs and graph.tensors[graph.ops[0].inputs[0]].dtype == "float32"
        assert (model_input.dtype, model_output.dtype) == ("float32", "float32")
    assert graph_cost(graph).macs > 0


def _while_loop(tf):
    return lambda x: tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, y * 2.0 + 1.0), [tf.constant(0), x])[1]


def _cond(tf):
    return lambda x: tf.cond(tf.reduce_sum(x) > 0, lambda: x * 2.0, lambda: x - 1.0)


@pytest.mark.parametrize("control_flow", [_while_loop, _cond], ids=["while", "cond"])
def test_model_with_several_subgraphs(tmp_path, tf, control_flow):
    data = convert(tf, control_flow(tf))
    count = subgraph_count(data)
    assert count >= 2  # WHILE (cond, body) or IF (then, else) keep their branches in subgraphs
    refused(write(tmp_path, "control_flow.tflite", data), f"has {count} subgraphs", "exactly one")


def test_operator_the_ir_does_not_know(tmp_path, tf, tiny):
    data = convert(tf, lambda x: tf.reduce_max(tiny(x), axis=1), int8=True, int8_io=True)
    refused(write(tmp_path, "reduce_max.tflite", data), "REDUCE_MAX", "does not support")


def test_directory(tmp_path):
    folder = tmp_path / "model.tflite"
    folder.mkdir()
    refused(folder, "is a directory")


def test_missing_file(tmp_path):
    refused(tmp_path / "absent.tflite", "no such file")


# --- damage the schema allows but the IR does not: made with the schema's object API -------------


def _weights(model: schema.ModelT) -> schema.TensorT:
    """The filter of the model's first CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED."""
    sub = model.subgraphs[0]
    weighted = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D,
                schema.BuiltinOperator.FULLY_CONNECTED}
    op = next(o for o in sub.operators if model.operatorCodes[o.opcodeIndex].builtinCode in weighted)
    return sub.tensors[op.inputs[1]]


# (The object API's numpy fields are read-only views of the file: replace them, do not write into them.)
def _set_scale(model):
    quantization = _weights(model).quantization
    quantization.scale = np.where(np.arange(len(quantization.scale)) == 0, np.nan, quantization.scale)


def _set_zero_point(model):
    quantization = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].quantization
    quantization.zeroPoint = np.full(len(quantization.zeroPoint), 300, dtype=np.int64)


def _set_axis(model):
    weights = _weights(model)
    weights.quantization.quantizedDimension = len(weights.shape)


def _set_string_type(model):
    model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].type = schema.TensorType.STRING


def _set_custom_operator(model):
    code = model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = b"My\x1b[31mOp\n"


@pytest.mark.parametrize("change, phrases", [
    (_set_scale, ["quantization scale nan", "not a positive number"]),
    (_set_zero_point, ["zero point 300", "outside the int8 range"]),
    (_set_axis, ["per-channel scales along axis", "but its shape is"]),
    (_set_string_type, ["of type STRING", "does not support"]),
    (_set_custom_operator, ["custom operator 'My\\x1b[31mOp\\n'"]),
], ids=["nan-scale", "zero-point", "channel-axis", "string-tensor", "custom-op"])
def test_damage_the_schema_allows(tmp_path, model_bytes, change, phrases):
    assert isinstance(parse_tflite(repacked(model_bytes, lambda model: None)), Graph)  # repacking alone is harmless
    message = refused(write(tmp_path, "damaged.tflite", repacked(model_bytes, change)), *phrases)
    assert message.isprintable()  # names from the file cannot put control characters on the terminal


# --- the command line: one line, no traceback ----------------------------------------------------


@pytest.mark.parametrize("kind, phrase", [("empty", "empty file"), ("truncated", "truncated"),
                                          ("control-flow", "subgraphs")])
def test_cli_analyze_prints_one_line(tmp_path, model_bytes, tf, kind, phrase):
    data = {"empty": lambda: b"", "truncated": lambda: model_bytes[:len(model_bytes) // 2],
            "control-flow": lambda: convert(tf, _cond(tf))}[kind]()
    path = write(tmp_path, f"{kind}.tflite", data)
    result = subprocess.run([sys.executable, "-m", "hwbench.cli", "analyze", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert lines[0].startswith(f"error: {path}: ") and phrase in lines[0][len(f"error: {path}: "):]


# --- fuzz ----------------------------------------------------------------------------------------

VARIANTS_PER_MODEL = 200
MAX_SECONDS_PER_VARIANT = 5.0
LARGE_INTS = [2**31 - 1, -1, -2**31, 2**28, 0xFFFF, -4, 1, 0]


class _Hang(BaseException):
    """Raised by the alarm; a BaseException so no `except Exception` inside the reader swallows it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Turns a hang into an exception where the OS offers an interval timer (POSIX)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(signum, frame):
        raise _Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def structure_positions(data: bytes) -> np.ndarray:
    """Byte positions outside the constant data: the root, tables, vtables, vectors and strings."""
    model = schema.Model.GetRootAsModel(data, 0)
    outside = np.ones(len(data), dtype=bool)
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            start = buffer._tab.Vector(buffer._tab.Offset(4))  # field 0 ('data') sits at vtable offset 4
            outside[start:start + buffer.DataLength()] = False
    return np.flatnonzero(outside)


def variants(data: bytes, rng: np.random.Generator, count: int) -> Iterator[tuple[str, bytes]]:
    """`count` damaged copies of `data`, each with a description, cycling through seven kinds of damage."""
    size, structure = len(data), structure_positions(data)
    for k in range(count):
        damaged = bytearray(data)
        kind = k % 7
        if kind == 0:
            end = int(rng.integers(0, size))
            yield f"truncated to {end} bytes", data[:end]
            continue
        if kind in (1, 2):  # bit flips in the first 4 KB (root table, vtables, first vectors) or the tables
            where = np.arange(min(size, 4096)) if kind == 1 else structure
            spots = [int(rng.choice(where)) for _ in range(int(rng.integers(1, 9)))]
            for spot in spots:
                damaged[spot] ^= 1 << int(rng.integers(0, 8))
            description = f"bits flipped at {spots}"
        elif kind == 3:
            spots = [int(rng.integers(0, size)) for _ in range(int(rng.integers(1, 9)))]
            for spot in spots:
                damaged[spot] = int(rng.integers(0, 256))
            description = f"random bytes at {spots}"
        elif kind == 4:  # offsets, lengths and indices are 4-byte aligned little-endian ints
            spot = int(rng.choice(structure)) & ~3
            value = int(rng.choice(LARGE_INTS + [size, size + 4]))
            damaged[spot:spot + 4] = value.to_bytes(4, "little", signed=value < 0)
            description = f"int {value} written at {spot}"
        elif kind == 5:
            spot, length = int(rng.choice(structure)), int(rng.integers(1, 65))
            damaged[spot:spot + length] = bytes(len(damaged[spot:spot + length]))
            description = f"{length} bytes zeroed at {spot}"
        else:
            spot, length = int(rng.integers(0, size)), int(rng.integers(1, 4097))
            damaged[spot:spot + length] = bytes(len(damaged[spot:spot + length]))
            description = f"{length} bytes zeroed at {spot}"
        yield description, bytes(damaged)


def fuzz(models: dict[str, bytes], seed: int) -> None:
    failures, refusals, slowest = [], 0, (0.0, "")
    for index, (name, data) in enumerate(sorted(models.items())):
        rng = np.random.default_rng([seed, index])
        for description, damaged in variants(data, rng, VARIANTS_PER_MODEL):
            start = time.perf_counter()
            try:
                with deadline(MAX_SECONDS_PER_VARIANT):
                    graph_cost(parse_tflite(damaged, source=name))  # what `hwbench analyze` does
            except HwbenchError as e:
                refusals += 1
                if not str(e).startswith(f"{name}: "):
                    failures.append(f"{name}, {description}: the message does not name the file: {e}")
            except (Exception, _Hang) as e:
                failures.append(f"{name}, {description}: {type(e).__name__}: {e}")
            slowest = max(slowest, (time.perf_counter() - start, f"{name}, {description}"))
    total = len(models) * VARIANTS_PER_MODEL
    assert not failures, f"{len(failures)} of {total} variants escaped as other exceptions:\n" + "\n".join(failures[:20])
    assert refusals >= total // 4, f"only {refusals} of {total} variants were refused: is the damage reaching the tables?"
    assert slowest[0] < 1.0, f"slowest variant took {slowest[0]:.2f} s: {slowest[1]}"


def test_fuzz_generated_models(generated_bytes):
    start = time.perf_counter()
    fuzz(generated_bytes, seed=2024)
    assert time.perf_counter() - start < 30


def test_fuzz_mlperf_tiny_models():
    if not SHARED_MODELS.is_dir():
        pytest.skip(NEEDS_SHARED)
    models = {file: (SHARED_MODELS / file).read_bytes() for file, _ in MLPERF_TINY.values()}
    start = time.perf_counter()
    fuzz(models, seed=2025)
    assert time.perf_counter() - start < 45
