"""Which path of its runtime kernel each operator takes, and the scratch memory that path needs.

Some runtime kernels have, beside TFLite's reference loops, fast paths in the style of CMSIS-NN
(operands packed for 16-bit SIMD multiply-accumulates). The path is chosen here, from the graph
alone, so that one rule serves everything that depends on it: the plan compiler records the path in
the plan (firmware_runner/compiler), the arena planner places its scratch buffer (hwbench.memory), and
the latency models can follow it. A path is the same on every board: a core with the DSP extension
runs it with SIMD instructions, any other core and the host build run the same steps in portable C,
so a plan and its arena do not depend on the board.

The fast paths are the default (FAST_BY_DEFAULT; fast=False asks for the reference paths): the
latency models' features count the loops of the path each layer takes (latency_models.features), and
a model fitted on counts of one set of paths never predicts the other, because the runtime hash,
which covers this file, changes with the switch.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwbench.graph import Graph, Op


@dataclass(frozen=True)
class KernelPath:
    name: str  # a path of runtime/hwb_ops.h's HWB_PATHS, e.g. "im2col"
    scratch_bytes: int = 0  # arena bytes the kernel needs while it runs


REFERENCE = KernelPath("reference")
FAST_BY_DEFAULT = True


def kernel_path(graph: Graph, op: Op, fast: bool | None = None) -> KernelPath:
    """The path `op` takes: its fastest one with `fast=True`, the reference path with `fast=False`,
    FAST_BY_DEFAULT's choice with None."""
    if not (FAST_BY_DEFAULT if fast is None else fast):
        return REFERENCE
    if op.type == "CONV_2D":
        return _conv2d(graph, op)
    if op.type == "DEPTHWISE_CONV_2D":
        return _depthwise(graph, op)
    if op.type == "FULLY_CONNECTED":
        return _fully_connected(graph, op)
    return REFERENCE


def round_up4(n: int) -> int:
    return -(-n // 4) * 4


def _fully_connected(graph: Graph, op: Op) -> KernelPath:
    """Four units at a time over the int8 input (dot), for the usual [units, depth] weights."""
    if len(op.inputs) < 2 or len(graph.tensors[op.inputs[1]].shape) != 2:
        return REFERENCE
    return KernelPath("dot")


def _dilated(op: Op) -> bool:
    return op.options.get("dilation_h_factor", 1) != 1 or op.options.get("dilation_w_factor", 1) != 1


def _depthwise(graph: Graph, op: Op) -> KernelPath:
    """A depth multiplier of 1 runs four channels at a time, the 3 x 3 filter unrolled (dw_3x3), any
    other size looped (dw_general); other multipliers and dilations stay on the reference path."""
    if len(op.inputs) < 2 or _dilated(op):
        return REFERENCE
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[0] != 1 or w.shape[3] != x.shape[3]:
        return REFERENCE
    return KernelPath("dw_3x3") if w.shape[1] == w.shape[2] == 3 else KernelPath("dw_general")


def _conv2d(graph: Graph, op: Op) -> KernelPath:
    """A convolution without groups or dilation is a matrix multiply over packed pixels: each output
    pixel's K = FH * FW * C input values, as int16 pairs, two pixels at a time (4 Kp bytes, Kp = K
    rounded up to 4); a 1 x 1 filter reads the pixel itself (pointwise), any other first gathers its
    window (im2col, Kp bytes more). Grouped or dilated convolutions stay on the reference path."""
    if len(op.inputs) < 2 or _dilated(op):
        return REFERENCE
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[3] != x.shape[3]:
        return REFERENCE
    kp = round_up4(w.shape[1] * w.shape[2] * w.shape[3])
    if w.shape[1] == w.shape[2] == 1:
        return KernelPath("pointwise", 4 * kp)
    return KernelPath("im2col", 5 * kp)


def scratch_sizes(graph: Graph, fast: bool | None = None) -> dict[int, int]:
    """Op index -> scratch bytes, for the ops whose path needs scratch memory."""
    paths = {v: kernel_path(graph, op, fast) for v, op in enumerate(graph.ops)}
    return {v: path.scratch_bytes for v, path in paths.items() if path.scratch_bytes}
