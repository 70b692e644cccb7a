"""The random model generator: coverage of the space and of the runtime's operators, costs from the
spec against the converted model, bounds and their retry limit, manifest, determinism."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from hwbench.boards import get_board
from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError
from hwbench import generate
from hwbench.generate import _calibration_problem, bounds_for, generate_models
from hwbench.generate.space import Bounds, Sampler, sample_architecture
from hwbench.generate.spec_graph import spec_cost, spec_graph
from hwbench.graph import KNOWN_OPS, Graph
from hwbench.memory import schedule
from hwbench.tflite_reader import read_tflite
from latency_models.features import op_features

POPULATION = 48  # models in the op-coverage population: every runtime op shows up in it


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    out = tmp_path_factory.mktemp("population")
    return out, generate_models(POPULATION, seed=2, out_dir=out, jobs=2)


def _layers(layers: list[dict]):
    for layer in layers:
        yield layer
        yield from _layers(layer.get("body", []))
        for branch in layer.get("branches", []):
            yield from _layers(branch)


def test_sampled_architectures_cover_the_space():
    rng = np.random.default_rng(0)
    archs = [sample_architecture(rng, Bounds())[0] for _ in range(1000)]
    layers = [layer for arch in archs for layer in _layers(arch["layers"])]
    convs = [layer for layer in layers if layer["op"] == "conv"]
    assert {layer["kernel"] for layer in convs} == set(range(1, 8))
    assert {layer["stride"] for layer in convs} == {1, 2}
    assert {layer["padding"] for layer in convs} == {"same", "valid"}
    assert {layer["activation"] for layer in convs} == {"relu", "relu6", None, "leaky_relu", "tanh", "hard_swish",
                                                        "sigmoid"}
    assert {layer["multiplier"] for layer in layers if layer["op"] == "dwconv"} == {1, 2}
    assert set(Counter(layer["op"] for layer in layers)) == {
        "conv", "dwconv", "maxpool", "avgpool", "pad", "residual", "concat", "se", "context", "transpose", "upsample",
        "global_avg", "flatten", "squeeze", "dense", "softmax", "log_softmax"}
    assert {layer["preact"] for layer in layers if layer["op"] == "residual"} == {None, "relu", "relu6"}
    assert {layer["merge"] for layer in layers if layer["op"] == "context"} == {"add", "sub"}
    assert {layer["merge"] for layer in layers if layer["op"] == "residual"} == {"add", "sub", "mul"}
    assert any([] in layer["branches"] for layer in layers if layer["op"] == "concat")  # x itself concatenated
    channels = [layer["filters"] for layer in convs]
    assert min(channels) == 1 and 200 <= max(channels) <= 256
    inputs = [tuple(arch["input"]) for arch in archs]
    images = [s for s in inputs if len(s) == 3 and s[0] == s[1] and s[2] in (1, 3)]
    assert min(s[0] for s in images) == 8 and 90 <= max(s[0] for s in images) <= 96
    assert (49, 10, 1) in inputs and any(len(s) == 1 for s in inputs)
    assert 0.1 < sum(arch.get("io") == "float32" for arch in archs) / len(archs) < 0.3


def test_bounds_are_respected_and_the_population_spreads():
    bounds = Bounds(max_macs=400_000, max_weight_bytes=20_000, max_peak_bytes=16_000, min_macs=1_000)
    rng = np.random.default_rng(1)
    archs = [sample_architecture(rng, bounds) for _ in range(300)]
    for arch, cost in archs[:40]:  # the reported cost is the spec graph's, peak from the memory scheduler
        graph = spec_graph(arch)
        assert (cost.macs, cost.weight_bytes, cost.peak_bytes) == (
            graph_cost(graph).macs, graph_cost(graph).weight_bytes, schedule(graph).peak_bytes)
    costs = [cost for _, cost in archs]
    assert all(bounds.admit(c.macs, c.weight_bytes, c.peak_bytes) for c in costs)
    macs = sorted(c.macs for c in costs)
    # Spread: the population reaches both ends of the allowed range (log scale).
    assert macs[0] < 10_000 and macs[-1] > 200_000


def _replayed_costs(seed: int, tries: int) -> list:
    """The costs of the first `tries` specs a sampler seeded with `seed` draws."""
    sampler = Sampler(np.random.default_rng(seed))
    return [spec_cost(sampler.architecture()[0]) for _ in range(tries)]


def test_impossible_bounds_name_the_bound_and_the_closest_value():
    with pytest.raises(HwbenchError, match="bounds"):
        Bounds(max_macs=100, min_macs=200)
    costs = _replayed_costs(0, 30)
    with pytest.raises(HwbenchError, match="widen the bounds") as error:
        sample_architecture(np.random.default_rng(0), Bounds(max_macs=5, max_weight_bytes=10**9,
                                                             max_peak_bytes=10**9), max_tries=30)
    message = str(error.value)
    assert "in 30 tries" in message and "MACs at most 5 (the fewest seen: " in message
    assert f"{min(c.macs for c in costs):,})" in message
    assert "weights" not in message and "peak" not in message  # those bounds were met
    with pytest.raises(HwbenchError) as error:
        sample_architecture(np.random.default_rng(0), Bounds(max_macs=10**13, max_weight_bytes=10**9,
                                                             max_peak_bytes=20, min_macs=10**12), max_tries=30)
    message = str(error.value)
    assert f"peak memory at most 20 B (the smallest seen: {min(c.peak_bytes for c in costs):,} B)" in message
    assert f"MACs at least 1,000,000,000,000 (the most seen: {max(c.macs for c in costs):,})" in message


def test_bounds_met_one_at_a_time_but_never_together_are_reported_as_such():
    # A seed whose fewest-MACs spec is not also the smallest in weights (most seeds are like that).
    seed, costs = next((seed, costs) for seed, costs in ((s, _replayed_costs(s, 20)) for s in range(20))
                       if min(costs, key=lambda c: c.macs).weight_bytes > min(c.weight_bytes for c in costs))
    fewest_macs = min(costs, key=lambda c: c.macs)
    bounds = Bounds(max_macs=fewest_macs.macs, max_weight_bytes=fewest_macs.weight_bytes - 1)
    assert not any(bounds.admit(c.macs, c.weight_bytes) for c in costs)
    with pytest.raises(HwbenchError, match="each bound was met by some model, but no model met all of them"):
        sample_architecture(np.random.default_rng(seed), bounds, max_tries=20)


def test_an_unknown_layer_in_a_spec_is_named():
    with pytest.raises(HwbenchError, match="unknown layer op 'dropout'"):
        spec_graph({"input": [8, 8, 1], "layers": [{"op": "dropout", "rate": 0.5}]})


def test_a_wildly_calibrated_tensor_is_named(generated):
    out, entries = generated
    graph = read_tflite(out / entries[0]["file"])
    assert _calibration_problem(graph) is None
    tensor = graph.tensors[graph.ops[0].outputs[0]]
    tensor.quantization.scale = np.array([2.3e20], dtype=np.float32)
    assert f"'{tensor.name}' was calibrated to scale 2.3e+20" in _calibration_problem(graph)


def test_the_build_retries_are_bounded_too(monkeypatch):
    monkeypatch.setattr(generate, "MAX_BUILDS", 2)
    monkeypatch.setattr(generate, "MAX_ACTIVATION_SCALE", 0.0)  # every converted model is refused
    with pytest.raises(HwbenchError, match=r"model 4 of seed 9: 2 converted models in a row were unusable, the "
                                           r"last one because tensor '.*' was calibrated to scale"):
        generate.make_model(9, 4, Bounds())


def test_board_bounds_follow_its_memory():
    bounds = bounds_for(board=get_board("nucleo-f411re"), max_weight_bytes=10**9, max_peak_bytes=10**9)
    assert bounds.max_weight_bytes == 512 * 1024 // 2 and bounds.max_peak_bytes == 128 * 1024 // 2


def test_every_runtime_op_appears_in_a_modest_population(population):
    _, entries = population
    models_with = Counter(op for entry in entries for op in entry["op_counts"])
    assert set(models_with) == KNOWN_OPS  # the 25 operators the runtime runs, and nothing else
    # The mix suits latency-model training: every kind in several models, none in nearly all.
    assert min(models_with.values()) >= 2 and max(models_with.values()) <= 0.95 * POPULATION
    requantized = [entry for entry in entries if _has_requantize(read_tflite(_path(population, entry)))]
    assert requantized  # QUANTIZE int8 -> int8 (a concatenated TANH or LOGISTIC), not only float edges


def _path(population, entry):
    return population[0] / entry["file"]


def _has_requantize(graph: Graph) -> bool:
    return any(op.type == "QUANTIZE" and graph.tensors[op.inputs[0]].dtype == "int8" for op in graph.ops)


def _signature(graph: Graph, op, keys) -> str:
    """An op as the costs and latency features see it: type, shapes, constant operands, options."""
    activations = [graph.tensors[i].shape for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant]
    constants = [(graph.tensors[i].shape, graph.tensors[i].dtype) for i in op.inputs
                 if i >= 0 and graph.tensors[i].is_constant]
    outputs = [graph.tensors[i].shape for i in op.outputs]
    return repr((op.type, activations, constants, outputs, [(k, op.options.get(k)) for k in sorted(keys)]))


# Kinds whose latency features read calibrated scales or zero points (latency_models.features).
READS_QUANTIZATION = {"ADD", "SUB", "MUL", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "QUANTIZE", "DEQUANTIZE",
                      "SOFTMAX", "LOG_SOFTMAX"}


def test_costs_from_the_spec_equal_the_converted_model(population):
    for entry in population[1]:
        spec, built = spec_graph(entry["architecture"]), read_tflite(_path(population, entry))
        spec_figures, built_figures = graph_cost(spec), graph_cost(built)
        assert (spec_figures.macs, spec_figures.weight_bytes, spec_figures.activation_bytes) == (
            entry["macs"], entry["weight_bytes"], entry["activation_bytes"]) == (
            built_figures.macs, built_figures.weight_bytes, built_figures.activation_bytes), entry["file"]
        assert spec_cost(entry["architecture"]).peak_bytes == entry["peak_bytes"] == schedule(built).peak_bytes
        assert spec.op_counts() == entry["op_counts"]
        # Op by op (in any order): what the spec's graph sets, the converter set too.
        keys = {op.type: set(op.options) for op in spec.ops}
        assert sorted(_signature(spec, op, keys[op.type]) for op in spec.ops) == sorted(
            _signature(built, op, keys[op.type]) for op in built.ops), entry["file"]
        # So a latency model predicts from the spec what it would predict from the file, but for the
        # kinds whose kernels branch on calibrated scales and zero points, which no spec knows.
        same = lambda graph: Counter((op.type, tuple(op_features(graph, op))) for op in graph.ops  # noqa: E731
                                     if op.type not in READS_QUANTIZATION)
        assert same(spec) == same(built), entry["file"]
        spec_edges = [spec.tensors[i].dtype for i in spec.inputs + spec.outputs]
        assert spec_edges == [built.tensors[i].dtype for i in built.inputs + built.outputs]
        assert spec_edges == 2 * [entry["architecture"].get("io", "int8")]


def test_manifest_describes_each_file(generated):
    out, entries = generated
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == entries
    for entry in entries:
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        graph = read_tflite(out / entry["file"])
        cost = graph_cost(graph)
        assert (entry["macs"], entry["weight_bytes"]) == (cost.macs, cost.weight_bytes)
        assert entry["peak_bytes"] == schedule(graph).peak_bytes
        assert entry["op_counts"] == dict(Counter(op.type for op in graph.ops))
        assert Bounds().admit(cost.macs, cost.weight_bytes, entry["peak_bytes"])
        assert entry["input_shape"] == [1, *entry["architecture"]["input"]]


def test_same_seed_same_bytes_in_a_fresh_process_with_other_jobs(generated, tmp_path):
    out, entries = generated
    # The session fixture built seed 11 in this process with one job; rebuild it with two workers.
    result = subprocess.run([sys.executable, "-m", "hwbench.cli", "generate", "--count", "3", "--seed", "11",
                             "--out", str(tmp_path), "--jobs", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    again = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [e["sha256"] for e in again] == [e["sha256"] for e in entries[:3]]
    assert [(tmp_path / e["file"]).read_bytes() for e in again] == [(out / e["file"]).read_bytes() for e in entries[:3]]


def test_different_seeds_give_different_models(generated, tmp_path):
    _, entries = generated
    other = generate_models(2, seed=12, out_dir=tmp_path)
    assert {e["sha256"] for e in other}.isdisjoint(e["sha256"] for e in entries)


def test_a_rerun_keeps_the_models_its_manifest_lists_and_builds_only_the_rest(generated, tmp_path, monkeypatch):
    out, entries = generated  # seed 11, default bounds
    for entry in entries[:3]:
        (tmp_path / entry["file"]).write_bytes((out / entry["file"]).read_bytes())
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries[:3]))
    (tmp_path / entries[1]["file"]).write_bytes(b"damaged")  # its sha256 no longer matches: built again
    built = []
    make_model = generate.make_model
    monkeypatch.setattr(generate, "make_model", lambda seed, index, bounds, check: built.append(index) or
                        make_model(seed, index, bounds, check))
    again = generate_models(4, seed=11, out_dir=tmp_path)
    assert built == [1, 3]
    assert [e["sha256"] for e in again[:3]] == [e["sha256"] for e in entries[:3]]
    assert [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()] == again
    built.clear()
    generate_models(4, seed=11, out_dir=tmp_path)
    assert built == []
    generate_models(2, seed=11, out_dir=tmp_path, bounds=Bounds(max_macs=4_000_000))  # other bounds: other models
    assert built == [0, 1]
    built.clear()
    generate_models(2, seed=11, out_dir=tmp_path, bounds=Bounds(max_macs=4_000_000), check=AcceptAll())
    assert built == [0, 1]  # another check: other models too


class AcceptAll:
    """A generated model's check that every model passes."""

    name = "accept all"

    def __call__(self, graph: Graph) -> str | None:
        return None
