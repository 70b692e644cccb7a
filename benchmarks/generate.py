"""Generator speed and the spread of what it generates; prints one JSON object.

    python benchmarks/generate.py [--count 120] [--jobs 1,2] [--seed 1]

Speed counts everything a user waits for with `hwbench generate --jobs J`: worker start-up
(TensorFlow import), sampling, Keras, conversion, writing files and the manifest. The machine may be
shared: the load average around each run and the CPU seconds per model (this process and its
workers) are printed beside the wall-clock rate. The population's spread and op mix are those of the
last run (every run generates the same models).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from collections import Counter

import numpy as np

from hwbench.costs import layer_costs
from hwbench.generate import generate_models
from hwbench.graph import Graph
from hwbench.tflite_reader import read_tflite


def quantiles(values: list[int]) -> dict:
    q = np.percentile(values, [0, 10, 50, 90, 100]) if values else []
    return dict(zip(["min", "p10", "median", "p90", "max"], (int(v) for v in q)))


def histogram(values: list[int], edges: list[int]) -> dict:
    counts, _ = np.histogram(values, bins=edges + [np.inf])
    return {f">={lo}": int(c) for lo, c in zip(edges, counts)}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed_run(count: int, seed: int, jobs: int, out: str) -> tuple[list[dict], dict]:
    load, cpu, start = os.getloadavg()[0], cpu_seconds(), time.perf_counter()
    entries = generate_models(count, seed, out, jobs=jobs)
    seconds = time.perf_counter() - start
    return entries, {"jobs": jobs, "seconds": round(seconds, 2), "models_per_second": round(count / seconds, 2),
                     "cpu_seconds_per_model": round((cpu_seconds() - cpu) / count, 3),
                     "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2)}


def variants(graph: Graph) -> set[str]:
    """The variants of an op real models use that this model has."""
    found = set()
    for op in graph.ops:
        shapes = [t.shape for t in graph.activation_inputs(op)]
        if op.type in ("ADD", "SUB", "MUL") and len(set(shapes)) > 1:
            found.add(f"broadcasting {op.type}")
        if op.type == "QUANTIZE":
            found.add("QUANTIZE float32 -> int8" if graph.tensors[op.inputs[0]].dtype == "float32"
                      else "QUANTIZE int8 -> int8 (requantization)")
        if op.type == "PAD" and any(reader.options.get("padding") == "VALID" for reader in graph.ops
                                    if op.outputs[0] in reader.inputs):
            found.add("PAD before a VALID convolution")
        if op.type == "MUL" and any(graph.ops[j].type == "LOGISTIC" and graph.ops[j].outputs[0] in op.inputs
                                    for j in range(len(graph.ops))):
            found.add("squeeze-and-excite (LOGISTIC gate, MUL)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--jobs", default="1,2", help="comma-separated worker counts, one timed run each")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    runs = []
    for jobs in (int(j) for j in args.jobs.split(",")):
        with tempfile.TemporaryDirectory() as out:
            entries, run = timed_run(args.count, args.seed, jobs, out)
            runs.append(run)
            graphs = [read_tflite(f"{out}/{entry['file']}") for entry in entries]

    layer_macs, channels, spatial, ops, models_with, found = [], [], [], Counter(), Counter(), Counter()
    for entry, graph in zip(entries, graphs):
        ops.update(entry["op_counts"])
        models_with.update(set(entry["op_counts"]))
        found.update(variants(graph))
        for op in graph.ops:
            out_shape = graph.tensors[op.outputs[0]].shape
            if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                channels.append(out_shape[-1])
            if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
                spatial.append(graph.tensors[op.inputs[0]].shape[1])
        layer_macs += [layer.macs for layer in layer_costs(graph) if layer.macs > 0]

    count = len(entries)
    inputs = Counter("vector" if len(e["input_shape"]) == 2 else
                     "image" if e["input_shape"][1] == e["input_shape"][2] else "audio" for e in entries)
    print(json.dumps({
        "count": count,
        "cpus": os.cpu_count(),
        "runs": runs,
        "model_macs": quantiles([e["macs"] for e in entries]),
        "model_weight_bytes": quantiles([e["weight_bytes"] for e in entries]),
        "model_peak_bytes": quantiles([e["peak_bytes"] for e in entries]),
        "model_ops": quantiles([sum(e["op_counts"].values()) for e in entries]),
        "layer_macs": quantiles(layer_macs),
        "layer_macs_histogram": histogram(layer_macs, [1, 100, 1_000, 10_000, 100_000, 1_000_000]),
        "output_channels": quantiles(channels),
        "output_channels_histogram": histogram(channels, [1, 4, 16, 64, 128, 256]),
        "input_spatial_size": quantiles(spatial),
        "input_spatial_histogram": histogram(spatial, [1, 4, 8, 16, 32, 64, 96]),
        "inputs": dict(inputs),
        "float_io_models": sum(e["architecture"].get("io") == "float32" for e in entries),
        "op_share_of_models": {op: round(n / count, 3) for op, n in models_with.most_common()},
        "op_counts": dict(ops.most_common()),
        "variant_share_of_models": {v: round(n / count, 3) for v, n in sorted(found.items())},
    }, indent=2))


if __name__ == "__main__":
    main()
