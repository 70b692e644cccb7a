"""Models that are not full-int8 — a float model, an int16-activation model (the converter's 16x8
mode), a LeNet whose int8 body ends in a float LOG_SOFTMAX after a DEQUANTIZE, and TFLite Micro's
own float sine model — are read and analyzed with every tensor at its dtype's byte size; `verify`
and `collect` refuse them by naming the operator and the dtype the runtime cannot run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from hwbench.analysis import analyze_graph
from hwbench.errors import PlanError
from hwbench.graph import Graph
from hwbench.tflite_reader import parse_tflite, read_tflite
from keras_ops import LENET_INPUT, convert, keras_model, lenet
from firmware_runner.compiler.plan import compile_plan

# The converter warns that a float32 model input has no statistics; it needs none here.
pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")


@pytest.fixture(scope="module")
def lenets(tmp_path_factory) -> dict[str, Path]:
    """One LeNet (softmax head) as int8, float and int16 with the same operators, and a LeNet whose
    LOG_SOFTMAX head stays float after the int8 body's DEQUANTIZE."""
    folder = tmp_path_factory.mktemp("lenets")
    model = lenet("softmax")
    files = {kind: convert(model, [LENET_INPUT], kind, calibration=(0.0, 1.0)) for kind in ("int8", "float", "int16")}
    files["float-tail"] = convert(lenet("log_softmax"), [LENET_INPUT], "int8", float_io=True, calibration=(0.0, 1.0),
                                  float_ops=["LOG_SOFTMAX"])
    for kind, data in files.items():
        (folder / f"lenet-{kind}.tflite").write_bytes(data)
    return {kind: folder / f"lenet-{kind}.tflite" for kind in files}


@pytest.fixture(scope="module")
def graphs(lenets) -> dict[str, Graph]:
    return {kind: read_tflite(path) for kind, path in lenets.items()}


def activation_dtypes(graph: Graph) -> list[tuple[str, str]]:
    """(op type, output dtype) in file order."""
    return [(op.type, graph.tensors[op.outputs[0]].dtype) for op in graph.ops]


def sine_model() -> Path:
    """TFLite Micro's hello-world float model, shipped in the tflite-micro package (a dev dependency)."""
    spec = find_spec("tflite_micro")
    path = Path(spec.submodule_search_locations[0]) / "python" / "tflite_micro" / "sine_float.tflite" if spec else None
    if path is None or not path.exists():
        pytest.skip("needs the tflite-micro package's sine_float.tflite (pip install -e .[dev])")
    return path


def test_models_that_are_not_int8_are_read(graphs):
    int8, float_, int16, tail = (graphs[k] for k in ("int8", "float", "int16", "float-tail"))
    assert [t for _, t in activation_dtypes(int8)] == ["int8"] * len(int8.ops)
    assert activation_dtypes(float_) == [(op, "float32") for op, _ in activation_dtypes(int8)]
    assert activation_dtypes(int16) == [(op, "int16") for op, _ in activation_dtypes(int8)]
    weighted = ("CONV_2D", "FULLY_CONNECTED")
    assert {float_.tensors[i].dtype for op in float_.ops if op.type in weighted for i in op.inputs[1:]} == {"float32"}
    assert {int16.tensors[op.inputs[2]].dtype for op in int16.ops if op.type in weighted} == {"int64"}
    assert activation_dtypes(tail)[-3:] == [("FULLY_CONNECTED", "int8"), ("DEQUANTIZE", "float32"),
                                            ("LOG_SOFTMAX", "float32")]


def test_memory_counts_every_tensor_at_its_dtype_size(graphs):
    """The same network's activations are 4x (float32) and 2x (int16) the int8 ones, so are all its
    peaks; the weights differ by exactly what the dtypes of weights and biases say."""
    result = {kind: analyze_graph(graph, kind, 1) for kind, graph in graphs.items()}
    for key in ("peak_bytes", "peak_bytes_no_inplace", "peak_bytes_file_order"):
        assert result["float"][key] == 4 * result["int8"][key]
        assert result["int16"][key] == 2 * result["int8"][key]
    keras_model = lenet("softmax")
    kernels = sum(layer.get_weights()[0].size for layer in keras_model.layers if layer.get_weights())
    biases = sum(layer.get_weights()[1].size for layer in keras_model.layers if layer.get_weights())
    # float32 weights take 4 bytes, not int8's 1 (biases 4 either way: float32 or int32); int16 models
    # keep int8 weights but take int64 biases, not int32.
    assert result["float"]["weights_bytes"] - result["int8"]["weights_bytes"] == 3 * kernels
    assert result["int16"]["weights_bytes"] - result["int8"]["weights_bytes"] == 4 * biases
    tail = {layer["op"]: layer for layer in result["float-tail"]["layers"]}
    classes = keras_model.output_shape[-1]
    assert (tail["DEQUANTIZE"]["input_bytes"], tail["DEQUANTIZE"]["output_bytes"]) == (classes, 4 * classes)
    assert (tail["LOG_SOFTMAX"]["input_bytes"], tail["LOG_SOFTMAX"]["output_bytes"]) == (4 * classes, 4 * classes)


@pytest.mark.parametrize("kind, dtype", [("float", "float32"), ("int16", "int16"), ("float-tail", "float32")])
def test_plan_compiler_names_the_operator_and_the_dtype(graphs, kind, dtype):
    graph = graphs[kind]
    with pytest.raises(PlanError) as info:
        compile_plan(graph)
    found = re.search(r": operator (\d+) \((\w+)\): ", str(info.value))
    assert found, str(info.value)
    op = graph.ops[int(found.group(1))]
    assert op.type == found.group(2)
    assert dtype in str(info.value) and dtype in {t.dtype for t in graph.input_tensors(op) + graph.output_tensors(op)}
    if kind == "float-tail":  # the int8 body compiles: the float head is what stops it
        assert op.type == "LOG_SOFTMAX"


def test_a_reshape_of_int16_data_names_the_operator():
    """RESHAPE moves any dtype's bytes, but a plan holds int8, int32 and float32 tensors only."""
    import keras

    model = convert(keras_model(lambda x: keras.layers.Reshape((12,))(x), [(3, 4)]), [(3, 4)], "int16")
    graph = parse_tflite(model)
    assert [(op.type, graph.tensors[op.outputs[0]].dtype) for op in graph.ops] == [("RESHAPE", "int16")]
    with pytest.raises(PlanError, match=r"operator 0 \(RESHAPE\): int16 tensor '.+' is not supported"):
        compile_plan(graph)


def hwbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hwbench.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_analyzes_but_does_not_verify_the_float_tail_lenet(lenets, graphs):
    path = lenets["float-tail"]
    analyzed = hwbench("analyze", str(path), "--json")
    assert analyzed.returncode == 0, analyzed.stderr
    assert json.loads(analyzed.stdout)["peak_bytes"] == analyze_graph(graphs["float-tail"], str(path), 16)["peak_bytes"]
    refused = hwbench("verify", str(path))
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
    index = [op.type for op in graphs["float-tail"].ops].index("LOG_SOFTMAX")
    assert f"operator {index} (LOG_SOFTMAX): float32 tensor" in lines[0]


def test_collect_records_them_as_skipped_with_the_reason(lenets, tmp_path):
    from hwbench.boards import get_board
    from hwbench.results import ResultsDB
    from firmware_runner.collect import collect

    files = [lenets[kind] for kind in ("float", "int16", "float-tail")]
    measured = {m.model: m for m in collect(get_board("mps2-an386"), files, ResultsDB(tmp_path / "r.db"), repeats=1)}
    rows = ResultsDB(tmp_path / "r.db").measurements().set_index("model")
    for path, dtype in zip(files, ("float32", "int16", "float32")):
        m = measured[path.name]
        assert m.status == "skipped" and re.search(rf"operator \d+ \(\w+\): {dtype} ", m.reason), m.reason
        assert (rows.loc[path.name, "status"], rows.loc[path.name, "reason"]) == ("skipped", m.reason)


def test_tflite_micro_float_sine_model_is_analyzed_and_refused_by_name():
    """A real-world float model: every activation at 4 bytes an element, as LiteRT itself sizes them."""
    from ai_edge_litert.interpreter import Interpreter

    path = sine_model()
    graph = read_tflite(path)
    interpreter = Interpreter(model_path=str(path))
    litert_bytes = {d["name"]: int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
                    for d in interpreter.get_tensor_details()}
    result = analyze_graph(graph, str(path), 1)
    for layer in result["layers"]:
        output = graph.tensors[graph.ops[layer["index"]].outputs[0]]
        assert layer["output_bytes"] == litert_bytes[output.name] == 4 * output.size
    with pytest.raises(PlanError, match=r"operator \d+ \(FULLY_CONNECTED\): float32 tensor"):
        compile_plan(parse_tflite(path.read_bytes(), path.name))
