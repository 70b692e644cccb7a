"""Which path of its runtime kernel each operator takes, and the scratch memory that path needs.

Some runtime kernels have, beside TFLite's reference loops, fast paths in the style of CMSIS-NN
(operands packed for 16-bit SIMD multiply-accumulates). The path is chosen here, from the graph
alone, so that one rule serves everything that depends on it: the plan compiler records the path in
the plan (firmware_runner/compiler), the arena planner places its scratch buffer (hwbench.memory), and
the latency models can follow it.

Which paths a board takes depends on its core (`fast_paths_for`): a core with the DSP extension
(Cortex-M4, M7, M33, M55) takes the fast paths, which it runs with SIMD instructions; the Cortex-M0
and M3 take the reference loops, because the fast paths' steps in portable C cost them more
instructions than the reference loops do (MLPerf Tiny kws on the M3: 11.3 instructions per MAC
against 10.6; sww on the M0: 18.9 against 12.8). So a plan, its arena and the latency features depend
on the board; the host build (no board) takes the fast paths, which is how the host tests check them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwbench.boards import DSP_CORES, Board
from hwbench.graph import Graph, Op
from hwbench.windows import inside_share


@dataclass(frozen=True)
class KernelPath:
    name: str  # a path of runtime/hwb_ops.h's HWB_PATHS, e.g. "im2col"
    scratch_bytes: int = 0  # arena bytes the kernel needs while it runs


REFERENCE = KernelPath("reference")


def fast_paths_for(board: Board | None) -> bool:
    """Whether `board` takes the fast paths (None: the host build, which does)."""
    return board is None or board.core in DSP_CORES


def kernel_path(graph: Graph, op: Op, fast: bool = True) -> KernelPath:
    """The path `op` takes: its fastest one with `fast=True`, the reference path with `fast=False`."""
    if not fast:
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


# A fast path multiplies every tap of the window, zero padding included, where the reference loop
# skips the taps outside the input: below this share of taps inside, the reference path is cheaper
# (measured on the M4 over 460 generated layers: most windows under 30% inside were slower on the
# fast paths, e.g. 7 x 7 filters over a 30 x 1 input; nearly all above it were faster).
MIN_INSIDE_SHARE = 0.3


def _mostly_padding(graph: Graph, op: Op) -> bool:
    x, w, y = (graph.tensors[t].shape for t in (op.inputs[0], op.inputs[1], op.outputs[0]))
    strides = (op.options.get("stride_h", 1), op.options.get("stride_w", 1))
    return inside_share(x[1:3], w[1:3], y[1:3], strides) < MIN_INSIDE_SHARE


def _depthwise(graph: Graph, op: Op) -> KernelPath:
    """A depth multiplier of 1 runs four channels at a time, the 3 x 3 filter unrolled (dw_3x3), any
    other size looped (dw_general); other multipliers and dilations stay on the reference path, and so
    do fewer than four channels, which the fast paths would run as a partial group only (measured on
    the M4: up to 4 times the reference loop's instructions), and windows mostly over padding."""
    if len(op.inputs) < 2 or _dilated(op):
        return REFERENCE
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[0] != 1 or w.shape[3] != x.shape[3] or x.shape[3] < 4 \
            or _mostly_padding(graph, op):
        return REFERENCE
    return KernelPath("dw_3x3") if w.shape[1] == w.shape[2] == 3 else KernelPath("dw_general")


def _conv2d(graph: Graph, op: Op) -> KernelPath:
    """A convolution without groups or dilation is a matrix multiply over packed pixels: each output
    pixel's K = FH * FW * C input values, as int16 pairs, two pixels at a time (4 Kp bytes, Kp = K
    rounded up to 4); a 1 x 1 filter reads the pixel itself (pointwise), any other first gathers its
    window (im2col, Kp bytes more). Grouped or dilated convolutions stay on the reference path, and so
    does a single output channel, which the matrix multiply would run as a leftover channel only
    (measured on the M4: 1.3 to 3.6 times the reference loop's instructions), and windows mostly over
    padding."""
    if len(op.inputs) < 2 or _dilated(op):
        return REFERENCE
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if len(x.shape) != 4 or len(w.shape) != 4 or w.shape[3] != x.shape[3] or w.shape[0] < 2 or _mostly_padding(graph, op):
        return REFERENCE
    kp = round_up4(w.shape[1] * w.shape[2] * w.shape[3])
    if w.shape[1] == w.shape[2] == 1:
        return KernelPath("pointwise", 4 * kp)
    return KernelPath("im2col", 5 * kp)


def scratch_sizes(graph: Graph, fast: bool = True) -> dict[int, int]:
    """Op index -> scratch bytes, for the ops whose path needs scratch memory."""
    paths = {v: kernel_path(graph, op, fast) for v, op in enumerate(graph.ops)}
    return {v: path.scratch_bytes for v, path in paths.items() if path.scratch_bytes}
