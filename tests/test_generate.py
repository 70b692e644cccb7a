"""The random model generator: coverage of the space, bounds, manifest, determinism."""

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
from hwbench.generate import bounds_for, generate_models
from hwbench.generate.space import Bounds, sample_architecture
from hwbench.tflite_reader import read_tflite

GENERATED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                 "MEAN", "RESHAPE", "SOFTMAX"}


def _layers(arch: dict):
    for layer in arch["layers"]:
        yield layer
        yield from layer.get("body", [])


def test_sampled_architectures_cover_the_space():
    rng = np.random.default_rng(0)
    archs = [sample_architecture(rng, Bounds())[0] for _ in range(1500)]
    layers = [layer for arch in archs for layer in _layers(arch)]
    convs = [layer for layer in layers if layer["op"] == "conv"]
    assert {layer["kernel"] for layer in convs} == set(range(1, 8))
    assert {layer["stride"] for layer in convs} == {1, 2}
    assert {layer["padding"] for layer in convs} == {"same", "valid"}
    assert {layer["activation"] for layer in convs} == {"relu", "relu6", None}
    assert {layer["multiplier"] for layer in layers if layer["op"] == "dwconv"} == {1, 2}
    ops = Counter(layer["op"] for layer in layers)
    assert set(ops) == {"conv", "dwconv", "maxpool", "avgpool", "residual", "global_avg", "flatten", "dense", "softmax"}
    channels = [layer["filters"] for layer in convs]
    assert min(channels) == 1 and 200 <= max(channels) <= 256
    inputs = [tuple(arch["input"]) for arch in archs]
    images = [s for s in inputs if len(s) == 3 and s[0] == s[1] and s[2] in (1, 3)]
    assert min(s[0] for s in images) == 8 and max(s[0] for s in images) == 96
    assert (49, 10, 1) in inputs and any(len(s) == 1 for s in inputs)


def test_bounds_are_respected_and_the_population_spreads():
    bounds = Bounds(max_macs=400_000, max_weight_bytes=20_000, max_peak_bytes=16_000, min_macs=1_000)
    rng = np.random.default_rng(1)
    costs = [sample_architecture(rng, bounds)[1] for _ in range(300)]
    assert all(bounds.admit(c.macs, c.weight_bytes, c.peak_bytes) for c in costs)
    macs = sorted(c.macs for c in costs)
    # Spread: the population reaches both ends of the allowed range (log scale).
    assert macs[0] < 10_000 and macs[-1] > 200_000


def test_impossible_bounds_are_a_clear_error():
    with pytest.raises(HwbenchError, match="bounds"):
        Bounds(max_macs=100, min_macs=200)
    with pytest.raises(HwbenchError, match="widen the bounds"):
        sample_architecture(np.random.default_rng(0), Bounds(max_macs=5, max_weight_bytes=5, max_peak_bytes=5),
                            max_tries=50)


def test_board_bounds_follow_its_memory():
    bounds = bounds_for(board=get_board("nucleo-f411re"), max_weight_bytes=10**9, max_peak_bytes=10**9)
    assert bounds.max_weight_bytes == 512 * 1024 // 2 and bounds.max_peak_bytes == 128 * 1024 // 2


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
        assert entry["op_counts"] == dict(Counter(op.type for op in graph.ops))
        assert set(entry["op_counts"]) <= GENERATED_OPS
        assert Bounds().admit(cost.macs, cost.weight_bytes)
        # Full int8 at the edges: no QUANTIZE/DEQUANTIZE, int8 in and out.
        assert all(graph.tensors[i].dtype == "int8" for i in graph.inputs + graph.outputs)


def test_cost_estimate_before_building_matches_the_converted_model(generated):
    from hwbench.generate.space import spec_cost

    out, entries = generated
    for entry in entries:
        estimate = spec_cost(entry["architecture"])
        assert estimate.macs == entry["macs"]
        # Exact but for shape operands (at most 8 bytes each) the converter adds or folds.
        shape_ops = sum(layer["op"] in ("flatten", "global_avg") for layer in entry["architecture"]["layers"])
        assert abs(estimate.weight_bytes - entry["weight_bytes"]) <= 8 * shape_ops


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
