"""Which path of its runtime kernel each operator takes, and the scratch memory that path needs.

Some runtime kernels have, beside TFLite's reference loops, fast paths in the style of CMSIS-NN
(operands packed for 16-bit SIMD multiply-accumulates). The path is chosen here, from the graph
alone, so that one rule serves everything that depends on it: the plan compiler records the path in
the plan (firmware_runner/compiler), the arena planner places its scratch buffer (hwbench.memory), and
the latency models can follow it. A path is the same on every board: a core with the DSP extension
runs it with SIMD instructions, any other core and the host build run the same steps in portable C,
so a plan and its arena do not depend on the board.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwbench.graph import Graph, Op


@dataclass(frozen=True)
class KernelPath:
    name: str  # a path of runtime/hwb_ops.h's HWB_PATHS, e.g. "im2col"
    scratch_bytes: int = 0  # arena bytes the kernel needs while it runs


REFERENCE = KernelPath("reference")


def kernel_path(graph: Graph, op: Op, fast: bool = True) -> KernelPath:
    """The path `op` takes; `fast=False` keeps every op on its reference path."""
    return REFERENCE


def scratch_sizes(graph: Graph, fast: bool = True) -> dict[int, int]:
    """Op index -> scratch bytes, for the ops whose path needs scratch memory."""
    paths = {v: kernel_path(graph, op, fast) for v, op in enumerate(graph.ops)}
    return {v: path.scratch_bytes for v, path in paths.items() if path.scratch_bytes}
