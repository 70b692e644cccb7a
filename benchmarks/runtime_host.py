"""The host build of the runtime: what it covers, how many models it runs bit-exactly, and its speed
next to TFLite's reference interpreter on the MLPerf Tiny models; prints one JSON object.

    python benchmarks/runtime_host.py [--count 100] [--samples 3] [--repeats 20]

Time per inference is the median over `repeats` runs of one invoke, measured in this one process
for both (the reference interpreter with BUILTIN_REF kernels, one thread, as ground truth runs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hwbench.generate import generate_models
from hwbench.tflite_reader import read_tflite
from firmware_runner.runtime.host import HostRuntime
from firmware_runner.compiler.lowering import LOWERINGS
from firmware_runner.compiler.plan import compile_plan
from firmware_runner.runtime.verify import random_inputs, verify_model

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed(path: Path, repeats: int) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    graph = read_tflite(path)
    inputs = random_inputs(graph, np.random.default_rng(0))
    runtime = HostRuntime(compile_plan(graph))
    runtime.set_inputs(inputs)
    host = median_seconds(runtime.invoke, repeats)
    reference = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                            num_threads=1)
    reference.allocate_tensors()
    for index, x in zip(graph.inputs, inputs):
        reference.set_tensor(index, x)
    tflite = median_seconds(reference.invoke, repeats)
    return {"host_ms": round(host * 1e3, 3), "tflite_ref_ms": round(tflite * 1e3, 3),
            "host_over_tflite_ref": round(host / tflite, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100, help="generated models to verify")
    parser.add_argument("--samples", type=int, default=3, help="random inputs per model")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per MLPerf model")
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out:
        entries = generate_models(args.count, args.seed, out, jobs=2)
        results = [verify_model(Path(out) / e["file"], samples=args.samples, seed=e["index"]) for e in entries]
    mlperf = {}
    for path in sorted(MLPERF.glob("*.tflite")):
        result = verify_model(path, samples=args.samples)
        mlperf[path.stem] = {"bit_exact": result.matched, "ops": result.ops, **speed(path, args.repeats)}
    print(json.dumps({
        "operators_covered": sorted(LOWERINGS),
        "operator_count": len(LOWERINGS),
        "generated_models": {"verified": len(results), "bit_exact": sum(r.matched for r in results),
                             "samples_each": args.samples},
        "mlperf_tiny": mlperf or "absent (needs ../shared/models/mlperf-tiny)",
    }, indent=1))


if __name__ == "__main__":
    main()
