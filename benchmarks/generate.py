"""Generator speed and the spread of what it generates; prints one JSON object.

    python benchmarks/generate.py [--count 120] [--jobs 2] [--seed 1]

Speed counts everything a user waits for with `hwbench generate --jobs J`: worker start-up
(TensorFlow import), sampling, Keras, conversion, writing files and the manifest.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter

import numpy as np

from hwbench.costs import layer_costs
from hwbench.generate import generate_models
from hwbench.tflite_reader import read_tflite


def quantiles(values: list[int]) -> dict:
    q = np.percentile(values, [0, 10, 50, 90, 100]) if values else []
    return dict(zip(["min", "p10", "median", "p90", "max"], (int(v) for v in q)))


def histogram(values: list[int], edges: list[int]) -> dict:
    counts, _ = np.histogram(values, bins=edges + [np.inf])
    return {f">={lo}": int(c) for lo, c in zip(edges, counts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        entries = generate_models(args.count, args.seed, out, jobs=args.jobs)
        seconds = time.perf_counter() - start
        layer_macs, channels, spatial, ops = [], [], [], Counter()
        for entry in entries:
            graph = read_tflite(f"{out}/{entry['file']}")
            ops.update(entry["op_counts"])
            for op in graph.ops:
                out_shape = graph.tensors[op.outputs[0]].shape
                if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                    channels.append(out_shape[-1])
                if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
                    spatial.append(graph.tensors[op.inputs[0]].shape[1])
            layer_macs += [layer.macs for layer in layer_costs(graph) if layer.macs > 0]

    inputs = Counter("vector" if len(e["input_shape"]) == 2 else
                     "image" if e["input_shape"][1] == e["input_shape"][2] else "audio" for e in entries)
    print(json.dumps({
        "count": args.count,
        "jobs": args.jobs,
        "seconds": round(seconds, 2),
        "models_per_second": round(args.count / seconds, 2),
        "model_macs": quantiles([e["macs"] for e in entries]),
        "model_weight_bytes": quantiles([e["weight_bytes"] for e in entries]),
        "layer_macs": quantiles(layer_macs),
        "layer_macs_histogram": histogram(layer_macs, [1, 100, 1_000, 10_000, 100_000, 1_000_000]),
        "output_channels": quantiles(channels),
        "output_channels_histogram": histogram(channels, [1, 4, 16, 64, 128, 256]),
        "input_spatial_size": quantiles(spatial),
        "input_spatial_histogram": histogram(spatial, [1, 4, 8, 16, 32, 64, 96]),
        "inputs": dict(inputs),
        "op_counts": dict(ops.most_common()),
    }, indent=2))


if __name__ == "__main__":
    main()
