"""What `hwbench predict` reports for a model file: predicted count and milliseconds per layer and
in total, the MACs baseline beside it, and the peak memory — "how fast and how big" in one call."""

from __future__ import annotations

import warnings
from pathlib import Path

from hwbench.costs import graph_cost, shape_text
from hwbench.graph import Graph
from hwbench.memory import memory_report
from latency_models.artifact import Artifact


def predict_report(artifact: Artifact, graph: Graph, model_name: str) -> dict:
    """One JSON-ready dict: model, count (per inference, in `unit`), unit, ms, baseline_count,
    baseline_ms, peak_bytes, arena_bytes, macs, overhead and layers (in execution order)."""
    model, clock = artifact.model, artifact.metadata.get("clock_hz")
    per_op = model.predict_layers(graph)
    overhead = model.overhead(graph)
    count = float(per_op.sum() + overhead)
    cost = graph_cost(graph)
    baseline = float(artifact.baseline.predict([cost.macs])[0])
    memory = memory_report(graph, fast=model.fast_paths)  # the arena of the kernel paths the board takes
    ms = (lambda c: c / clock * 1e3) if clock else (lambda c: None)
    fallback = model.fallback_kinds(graph)
    layers = []
    for step, index in enumerate(memory.order):
        layer, op = cost.layers[index], graph.ops[index]
        layers.append({"step": step, "index": index, "op": op.type,
                       "inputs": [list(s) for s in layer.input_shapes], "outputs": [list(s) for s in layer.output_shapes],
                       "shapes_text": " → ".join((", ".join(map(shape_text, layer.input_shapes)),
                                                  ", ".join(map(shape_text, layer.output_shapes)))),
                       "macs": layer.macs, "count": float(per_op[index]), "ms": ms(float(per_op[index])),
                       "fallback": op.type in fallback or model.op_kind(graph, op) in fallback})
    return {"model": model_name, "board": artifact.board, "count": count, "unit": artifact.unit, "ms": ms(count),
            "baseline_count": baseline, "baseline_ms": ms(baseline), "overhead_count": overhead,
            "macs": cost.macs, "weight_bytes": cost.weight_bytes, "peak_bytes": memory.peak_bytes,
            "arena_bytes": memory.arena.size, "runtime_hash": artifact.runtime_hash,
            "fallback_ops": sorted(fallback), "not_int8_ops": not_int8_ops(graph), "layers": layers}


def not_int8_ops(graph: Graph) -> list[str]:
    """The operator types that compute on float or int16 data (QUANTIZE and DEQUANTIZE, which
    convert at the int8 edges, aside): the runtime, and so the latency model, has int8 kernels only."""
    return sorted({op.type for op in graph.ops if op.type not in ("QUANTIZE", "DEQUANTIZE") and any(
        t.dtype not in ("int8", "int32") for t in graph.activation_inputs(op) + graph.output_tensors(op))})


def predict_files(artifact: Artifact, paths: list[Path]) -> list[dict]:
    from hwbench.tflite_reader import read_tflite

    reports = []
    for path in paths:
        graph = read_tflite(path)
        report = predict_report(artifact, graph, str(path))
        if report["fallback_ops"]:
            warnings.warn(f"{path}: the latency model has no training data for {', '.join(report['fallback_ops'])}; "
                          f"those layers are predicted by the generic fallback regressor (less accurate)")
        if report["not_int8_ops"]:
            warnings.warn(f"{path}: {', '.join(report['not_int8_ops'])} compute on float or int16 data; the board's "
                          f"runtime has int8 kernels only, so those layers are priced as if they were int8")
        reports.append(report)
    return reports


def current_runtime_hash(board_name: str) -> str | None:
    """The runtime hash `hwbench collect` would record on this board now, from the sources alone
    (nothing is compiled); None when the board file is no longer there."""
    from hwbench.boards import get_board
    from hwbench.errors import BoardError
    from hwbench.runtime_hash import runtime_hash

    try:
        return runtime_hash(get_board(board_name))
    except BoardError:
        return None
