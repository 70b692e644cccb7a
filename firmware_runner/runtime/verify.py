"""Is the hwbench runtime bit-exact with TFLite? Run a model through both on random inputs and
compare every op's output, byte for byte."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwbench.graph import Graph
from hwbench.tflite_reader import parse_tflite
from firmware_runner.runtime.host import HostRuntime
from firmware_runner.compiler.plan import Plan, compile_plan
from firmware_runner.runtime.reference import reference_run


@dataclass(frozen=True)
class Difference:
    """The first op output (in execution order) where the runtime and TFLite disagree."""

    sample: int  # which random input
    step: int  # position in the execution order
    op_index: int  # the graph op
    op_type: str
    tensor: str
    index: tuple[int, ...]  # the first differing element
    expected: Any  # TFLite's value
    got: Any  # the runtime's
    count: int  # how many elements of that tensor differ


@dataclass(frozen=True)
class Verification:
    model: str
    samples: int
    ops: int
    output_bytes: int  # output bytes compared per sample
    difference: Difference | None

    @property
    def matched(self) -> bool:
        return self.difference is None

    def to_json(self) -> dict:
        diff = self.difference
        return {"model": self.model, "samples": self.samples, "ops": self.ops, "output_bytes": self.output_bytes,
                "matched": self.matched,
                "difference": None if diff is None else {**diff.__dict__, "index": list(diff.index),
                                                          "expected": _plain(diff.expected), "got": _plain(diff.got)}}


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def random_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    """One random value for every model input: int8 over its whole range; float32 over the range the
    input's QUANTIZE maps onto int8, and a little past it to reach saturation."""
    values = []
    for index in graph.inputs:
        t = graph.tensors[index]
        if t.dtype == "int8":
            values.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        else:
            consumer = next((op for op in graph.ops if index in op.inputs), None)
            q = graph.tensors[consumer.outputs[0]].quantization if consumer is not None else None
            lo, hi = (-1.0, 1.0) if q is None else (float(q.scale[0]) * (-128 - int(q.zero_point[0])),
                                                  float(q.scale[0]) * (127 - int(q.zero_point[0])))
            margin = 0.1 * (hi - lo)
            values.append(rng.uniform(lo - margin, hi + margin, size=t.shape).astype(t.dtype))
    return values


def verify_model(model: str | Path | bytes, samples: int = 3, seed: int = 0, plan: Plan | None = None,
                 fast: bool = True) -> Verification:
    """Compile `model` (its kernels' fast paths with `fast=True`, see hwbench.kernel_paths), run it on
    `samples` random inputs through the host runtime and through TFLite's reference kernels, and
    report the first difference (None when bit-exact)."""
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    name = "model" if isinstance(model, bytes) else str(model)
    graph = parse_tflite(data, name)
    plan = plan or compile_plan(graph, fast=fast)
    runtime = HostRuntime(plan)
    rng = np.random.default_rng(seed)
    output_bytes = sum(graph.tensors[t].nbytes for t in graph.outputs)
    for sample in range(samples):
        inputs = random_inputs(graph, rng)
        _, expected = reference_run(data, graph, inputs, all_tensors=True)
        _, layers = runtime.run_layers(inputs)
        for step, (op, got) in enumerate(zip(plan.ops, layers)):
            for t, value in got.items():
                diff = _first_difference(expected[t].reshape(value.shape), value)
                if diff is not None:
                    index, count = diff
                    return Verification(name, samples, len(plan.ops), output_bytes, Difference(
                        sample, step, op.graph_index, op.type, graph.tensors[t].name, index,
                        expected[t].reshape(value.shape)[index], value[index], count))
    return Verification(name, samples, len(plan.ops), output_bytes, None)


def _first_difference(expected: np.ndarray, got: np.ndarray) -> tuple[tuple[int, ...], int] | None:
    """The first element whose bytes differ, and how many do (None: identical)."""
    if expected.dtype != got.dtype:
        raise AssertionError(f"dtype {got.dtype} where TFLite has {expected.dtype}")  # a compiler bug
    def as_bytes(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, a.itemsize)
    bad = np.flatnonzero((as_bytes(expected) != as_bytes(got)).any(axis=1))
    if bad.size == 0:
        return None
    return tuple(int(i) for i in np.unravel_index(bad[0], got.shape)), int(bad.size)
