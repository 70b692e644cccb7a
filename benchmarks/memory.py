"""Peak-memory scheduler and arena planner: speed and quality, printed as one JSON object.

    python benchmarks/memory.py [--count 500] [--seed 3] [--population DIR] [--jobs 2]

- scheduler time by graph size: MobileNetV2-style chains with residual blocks (up to 160 ops,
  built directly as IR) and multi-branch (Inception-style) blocks;
- arena vs peak vs TFLM's greedy planner ("head" of `print_allocations()`) over a generated
  population, which is generated once into a cache folder and reused;
- the five MLPerf Tiny models from ../shared/models, when present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hwbench.graph import Graph, Op, Tensor
from hwbench.memory import memory_report, overlaps, plan_arena, schedule
from hwbench.tflite_reader import read_tflite

ROOT = Path(__file__).resolve().parents[1]
MLPERF = ROOT.parent / "shared" / "models" / "mlperf-tiny"


# --- graphs built directly as IR -------------------------------------------------------------

class _Builder:
    def __init__(self, name: str):
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.name = name

    def tensor(self, shape: tuple[int, ...], constant: bool = False, dtype: str = "int8") -> int:
        data = np.zeros(shape, dtype=dtype) if constant else None
        self.tensors.append(Tensor(f"t{len(self.tensors)}", tuple(shape), dtype, data=data))
        return len(self.tensors) - 1

    def op(self, kind: str, inputs: list[int], out_shape: tuple[int, ...], **options) -> int:
        out = self.tensor(out_shape)
        self.ops.append(Op(kind, tuple(inputs), (out,), dict(options)))
        return out

    def conv(self, x: int, filters: int, kernel: int = 1, stride: int = 1) -> int:
        h, w, c = self.tensors[x].shape[1:]
        weights = self.tensor((filters, kernel, kernel, c), constant=True)
        bias = self.tensor((filters,), constant=True, dtype="int32")
        return self.op("CONV_2D", [x, weights, bias], (1, -(-h // stride), -(-w // stride), filters),
                       stride_h=stride, stride_w=stride, padding="SAME")

    def dwconv(self, x: int, stride: int = 1) -> int:
        h, w, c = self.tensors[x].shape[1:]
        weights = self.tensor((1, 3, 3, c), constant=True)
        bias = self.tensor((c,), constant=True, dtype="int32")
        return self.op("DEPTHWISE_CONV_2D", [x, weights, bias], (1, -(-h // stride), -(-w // stride), c),
                       stride_h=stride, stride_w=stride, padding="SAME")

    def relu6(self, x: int) -> int:
        return self.op("RELU6", [x], self.tensors[x].shape)

    def graph(self, inputs: tuple[int, ...], outputs: tuple[int, ...]) -> Graph:
        return Graph(self.tensors, self.ops, inputs, outputs, name=self.name)


def mobilenet_v2_graph(repeats: tuple[int, ...] = (1, 2, 3, 4, 3, 3, 1), size: int = 96, width: float = 0.35,
                       extra_repeats: int = 0) -> Graph:
    """A MobileNetV2-style graph with unfused ReLU6 ops (as a converter emits for some models):
    stem conv, inverted residual blocks (expand 1×1, depthwise 3×3, project 1×1, ADD when the
    shape is kept), head conv, global average, classifier. The defaults give 100 ops;
    `extra_repeats` adds blocks to the last-but-one stage (6 ops each: 10 give 160 ops)."""
    b = _Builder(f"mobilenet_v2_{size}")
    x0 = b.tensor((1, size, size, 3))
    channels = [max(8, int(c * width) // 8 * 8) for c in (16, 24, 32, 64, 96, 160, 320)]
    strides = (1, 2, 2, 2, 1, 2, 1)
    repeats = tuple(r + (extra_repeats if i == len(repeats) - 2 else 0) for i, r in enumerate(repeats))
    x = b.relu6(b.conv(x0, max(8, int(32 * width) // 8 * 8), kernel=3, stride=2))
    for stage, (c, s, r) in enumerate(zip(channels, strides, repeats)):
        for i in range(r):
            cin = b.tensors[x].shape[-1]
            y = x if stage == 0 else b.relu6(b.conv(x, cin * 6))
            y = b.relu6(b.dwconv(y, stride=s if i == 0 else 1))
            y = b.conv(y, c)
            if i > 0 and cin == c:
                y = b.op("ADD", [x, y], b.tensors[y].shape)
            x = y
    x = b.relu6(b.conv(x, 1280))
    axes = b.tensor((2,), constant=True, dtype="int32")
    x = b.op("MEAN", [x, axes], (1, 1280))
    w = b.tensor((10, 1280), constant=True)
    x = b.op("FULLY_CONNECTED", [x, w], (1, 10))
    x = b.op("SOFTMAX", [x], (1, 10))
    return b.graph((x0,), (x,))


def _concatenated_branches(b: _Builder, x: int, blocks: int, branches: int, depth: int, size: int,
                           conv: Callable[[int, int, int], int]) -> int:
    """`blocks` times: split x into `branches` chains of `depth` convolutions, `conv(y, branch, depth)`,
    join them with a CONCATENATION and mix with a 1×1 convolution."""
    for _ in range(blocks):
        ends = []
        for k in range(branches):
            y = x
            for d in range(depth):
                y = conv(y, k, d)
            ends.append(y)
        x = b.op("CONCATENATION", ends, (1, size, size, sum(b.tensors[e].shape[-1] for e in ends)), axis=3)
        x = b.conv(x, 8)
    return x


def branchy_graph(blocks: int, branches: int = 3, depth: int = 2, size: int = 16) -> Graph:
    """Inception-style: each block splits into `branches` chains of `depth` convolutions that a
    CONCATENATION joins; the hard case for an order search (many interleavings)."""
    b = _Builder(f"branchy_{blocks}x{branches}x{depth}")
    x0 = b.tensor((1, size, size, 8))
    x = _concatenated_branches(b, x0, blocks, branches, depth, size,
                               lambda y, k, d: b.conv(y, 8 + 4 * ((k + d) % 3), kernel=1 + 2 * (d % 2)))
    return b.graph((x0,), (x,))


def funnel_graph(blocks: int, branches: int, depth: int, seed: int = 0) -> Graph:
    """Branches that swell then shrink to a few channels, joined by a concatenation: the order
    (finish one branch before starting the next) decides the peak, so the search has to work."""
    rng = np.random.default_rng(seed)
    b = _Builder(f"funnel_{blocks}x{branches}x{depth}")
    x0 = b.tensor((1, 16, 16, 8))
    x = _concatenated_branches(b, x0, blocks, branches, depth, 16,
                               lambda y, k, d: b.conv(y, int(rng.integers(8, 40)) if d < depth - 1
                                                      else int(rng.integers(1, 6))))
    return b.graph((x0,), (x,))


# --- TFLM's figure ----------------------------------------------------------------------------

def tflm_head_bytes(path: str | Path) -> int:
    """TFLM's planned activation arena for a model: the "head" line of `print_allocations()`,
    which the interpreter writes to the C-level stderr (captured through the file descriptor)."""
    from tflite_micro.python.tflite_micro import runtime

    # The default arena (10 × the file size) is too small for models with few weights and big activations.
    interpreter = runtime.Interpreter.from_file(str(path), arena_size=64 * 1024 * 1024)
    fd = 2  # the C library writes to file descriptor 2, whatever sys.stderr is now
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), fd)
        try:
            interpreter.print_allocations()
        finally:
            os.dup2(saved, fd)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    for line in text.splitlines():
        if "Arena allocation head" in line:
            return int(line.split("head")[1].split()[0])
    raise RuntimeError(f"{path}: no 'Arena allocation head' line in TFLM's print_allocations() output")


# --- the measurements -------------------------------------------------------------------------

def scheduler_times() -> list[dict]:
    graphs = [mobilenet_v2_graph(repeats=(1, 1, 1), size=32), mobilenet_v2_graph(repeats=(1, 2, 2, 2)),
              mobilenet_v2_graph(), mobilenet_v2_graph(extra_repeats=10)]
    graphs += [branchy_graph(4), branchy_graph(8, branches=4, depth=3)]
    graphs += [funnel_graph(2, 3, 3), funnel_graph(3, 4, 4), funnel_graph(2, 6, 4), funnel_graph(2, 6, 5),
               funnel_graph(2, 8, 4), funnel_graph(6, 4, 4), funnel_graph(1, 10, 4), funnel_graph(1, 12, 4)]
    rows = []
    for g in graphs:
        for inplace in (True, False):
            s = schedule(g, inplace=inplace)
            rows.append({"graph": g.name, "ops": len(g.ops), "inplace": inplace, "seconds": round(s.seconds, 4),
                         "states": s.states, "exact": s.exact, "peak_bytes": s.peak_bytes})
    return rows


def population(count: int, seed: int, folder: Path, jobs: int) -> list[Path]:
    from hwbench.generate import generate_models

    manifest = folder / "manifest.jsonl"
    have = manifest.read_text().count("\n") if manifest.exists() else 0
    if have < count:
        print(f"generating {count} models into {folder} (once; later runs reuse them)", file=sys.stderr)
        generate_models(count, seed, folder, jobs=jobs)
    files = [json.loads(line)["file"] for line in manifest.read_text().splitlines()]
    return [folder / f for f in files[:count]]


def arena_vs_tflm(paths: list[Path]) -> dict:
    equal_1 = equal_16 = 0
    worst_ratio_1 = worst_ratio_tflm = 0.0
    above_tflm, below_tflm, inexact, overlap_models = [], 0, 0, 0
    seconds = []
    for path in paths:
        graph = read_tflite(path)
        start = time.perf_counter()
        report = memory_report(graph, alignment=16)
        seconds.append(time.perf_counter() - start)
        inexact += not report.exact
        tight = plan_arena(graph, report.order, alignment=1)
        equal_1 += tight.size == report.peak_bytes
        equal_16 += report.arena.size == report.arena.lower_bound
        worst_ratio_1 = max(worst_ratio_1, tight.size / report.peak_bytes)
        overlap_models += bool(overlaps(report.arena) or overlaps(tight))
        head = tflm_head_bytes(path)
        worst_ratio_tflm = max(worst_ratio_tflm, report.arena.size / head)
        below_tflm += report.arena.size < head
        if report.arena.size > head:
            above_tflm.append({"model": path.name, "arena_bytes": report.arena.size, "tflm_head_bytes": head})
    n = len(paths)
    return {
        "models": n,
        "arena_equals_peak_alignment_1": equal_1, "arena_equals_peak_alignment_1_fraction": round(equal_1 / n, 4),
        "arena_equals_aligned_peak_alignment_16": equal_16,
        "worst_arena_over_peak_alignment_1": round(worst_ratio_1, 4),
        "arena16_below_tflm": below_tflm, "arena16_above_tflm": above_tflm,
        "worst_arena16_over_tflm_head": round(worst_ratio_tflm, 4),
        "models_with_overlaps": overlap_models, "inexact_schedules": inexact,
        "analyze_seconds_mean": round(sum(seconds) / n, 4), "analyze_seconds_max": round(max(seconds), 4),
    }


def mlperf() -> list[dict] | str:
    if not MLPERF.is_dir():
        return f"skipped: {MLPERF} is absent"
    rows = []
    for path in sorted(MLPERF.glob("*.tflite")):
        graph = read_tflite(path)
        r = memory_report(graph, alignment=16)
        rows.append({"model": path.name, "ops": len(graph.ops), "peak_bytes": r.peak_bytes,
                     "peak_bytes_no_inplace": r.peak_bytes_no_inplace, "peak_bytes_file_order": r.peak_bytes_file_order,
                     "arena_bytes_alignment_16": r.arena.size, "tflm_head_bytes": tflm_head_bytes(path),
                     "exact": r.exact, "seconds": round(r.schedule.seconds, 4)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--population", type=Path, default=ROOT / "out" / "memory-benchmark-population")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    paths = population(args.count, args.seed, args.population, args.jobs)
    print(json.dumps({
        "scheduler_time_by_size": scheduler_times(),
        "generated_population": {"seed": args.seed, **arena_vs_tflm(paths)},
        "mlperf_tiny": mlperf(),
    }, indent=1))


if __name__ == "__main__":
    main()
