"""Per-layer latency features, computed from the graph IR alone (before a model is converted or run).

The hwbench runtime's kernels are plain loop nests (firmware_runner/runtime/kernels/*.c), and an
emulated board counts instructions, so a layer's count is close to a linear function of how often
each loop body runs. The features of an operator kind are those trip counts, derived from shapes,
strides and padding exactly as the kernel iterates (a SAME-padded window clipped at the border runs
fewer inner iterations than its nominal MACs say), followed by descriptive parameters (kernel,
stride, channels, fused activation, ...) that tree-based regressors may use. The first `n_linear`
columns of a kind are its trip counts: the ones a linear regressor uses.

Kernels that move bytes (PAD, TRANSPOSE, CONCATENATION, RESIZE_NEAREST_NEIGHBOR, an unaliased
RESHAPE) call the C library's memmove and memset, whose loops run word by word only on 4-aligned
addresses: their features count those loops' trips per call (copy_trips, fill_trips).

Kernel paths: an operator whose kernel has fast paths (hwbench.kernel_paths: CONV_2D's im2col and
pointwise matrix multiplies, DEPTHWISE_CONV_2D's dw_3x3 and dw_general, FULLY_CONNECTED's dot) is
a kind of its own on each fast path, named "TYPE.path" (CONV_2D.im2col; not a slash, which would
nest one kind's arrays inside another's in a model file), with the fast path's loops as its
features: the loop structures of two paths have little in common, so one regressor per path fits
each exactly, and an artifact's kinds say which path each regressor describes. The reference path
keeps the plain type name. The path is the one the plan compiler records by default, the one
`collect` measures.

Operator kinds: every operator the runtime executes has its own features and its own regressor,
except SQUEEZE, which runs RESHAPE's kernel, and SUB, whose kernel is ADD's with a subtraction for the
addition (same features, same regressor: generated models hold few SUBs, all broadcast). Kernels with
the loop structure of another kind (MAX_POOL_2D of AVERAGE_POOL_2D's, LOG_SOFTMAX of SOFTMAX's, TANH
of LOGISTIC's, RELU6 of RELU's) share its features, not its regressor. GENERIC
features (element counts, MACs, bytes) are the fallback for a kind a latency model has no training
data for, and for operator types the runtime does not know.

Bump SCHEMA_VERSION whenever a feature's meaning or order changes: artifacts record it and refuse
to load under another.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from functools import lru_cache
from math import frexp, isfinite, log2, prod
from typing import Callable

import numpy as np

from hwbench.costs import op_macs
from hwbench.graph import NO_TENSOR, Graph, Op
from hwbench.kernel_paths import REFERENCE, kernel_path, round_up4
from hwbench.memory.buffers import reuse_rule
from hwbench.windows import axis_taps, same_padding

SCHEMA_VERSION = 3
GENERIC = "GENERIC"
_ACTIVATION_CODES = {None: 0, "NONE": 0, "RELU": 1, "RELU6": 2, "RELU_N1_TO_1": 3}


@dataclass(frozen=True)
class KindFeatures:
    """The features of one operator kind: column names, how many leading ones are trip counts, the
    function computing them for one op; its principal loops: those that carry most of its count,
    which the layers of a few models can fix when its many minor loops cannot be told apart (empty:
    every loop); and its float loops, whose bodies do float32 arithmetic (a library call each on a
    core without an FPU, so their cost changes between cores apart from the integer loops')."""

    kind: str
    names: tuple[str, ...]
    n_linear: int
    compute: Callable[[Graph, Op], list[float]]
    principal: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()

    @property
    def principal_loops(self) -> tuple[int, ...]:
        """The principal loops' column indices."""
        return tuple(self.names.index(name) for name in self.principal)

    @property
    def float_loops(self) -> np.ndarray:
        """Per loop column, whether it is a float loop."""
        return np.isin(self.names[: self.n_linear], self.floats)


def _activation(op: Op) -> float:
    return float(_ACTIVATION_CODES.get(op.options.get("fused_activation_function"), 4))


def _window(graph: Graph, op: Op, f_h: int, f_w: int):
    """(batch, in_h, in_w, in_c, out_h, out_w, out_c, rows, cols, stride_h, stride_w) of a 2-D
    window op: rows/cols are the in-input window taps summed over output rows/columns."""
    n, in_h, in_w, in_c = graph.tensors[op.inputs[0]].shape
    _, out_h, out_w, out_c = graph.tensors[op.outputs[0]].shape
    options = op.options
    s_h, s_w = options.get("stride_h", 1), options.get("stride_w", 1)
    return (n, in_h, in_w, in_c, out_h, out_w, out_c, axis_taps(in_h, f_h, out_h, s_h),
            axis_taps(in_w, f_w, out_w, s_w), s_h, s_w)


def _conv2d(graph: Graph, op: Op) -> list[float]:
    out_c, f_h, f_w, f_c = graph.tensors[op.inputs[1]].shape
    n, in_h, in_w, in_c, out_h, out_w, _, rows, cols, s_h, s_w = _window(graph, op, f_h, f_w)
    pixels = n * out_h * out_w
    fy = n * out_c * rows * out_w  # the fx loop is entered once per (output, window row)
    fx = n * out_c * rows * cols  # the channel loop is entered once per (output, window tap)
    return [1.0, n * out_h, pixels, pixels * out_c, fy, fx, fx * f_c, out_c, pixels * out_c * _unclipped(graph, op),
            in_h, in_w, in_c, out_c, f_h, f_w, s_h, s_w, float(op.options.get("padding") == "SAME"),
            _activation(op), op_macs(graph, op)]


def _depthwise(graph: Graph, op: Op) -> list[float]:
    _, f_h, f_w, out_c = graph.tensors[op.inputs[1]].shape
    n, in_h, in_w, in_c, out_h, out_w, _, rows, cols, s_h, s_w = _window(graph, op, f_h, f_w)
    pixels = n * out_h * out_w
    return [1.0, n * out_h, pixels, pixels * out_c, n * out_c * rows * out_w, n * out_c * rows * cols, out_c,
            pixels * out_c * _unclipped(graph, op), in_h, in_w, in_c, out_c, f_h, f_w, s_h, s_w,
            float(op.options.get("depth_multiplier", 1)),
            float(op.options.get("padding") == "SAME"), _activation(op), op_macs(graph, op)]


def _pool(graph: Graph, op: Op) -> list[float]:
    f_h, f_w = int(op.options.get("filter_height", 1)), int(op.options.get("filter_width", 1))
    n, in_h, in_w, c, out_h, out_w, _, rows, cols, s_h, s_w = _window(graph, op, f_h, f_w)
    pixels = n * out_h * out_w
    return [1.0, n * out_h, pixels, pixels * c, n * c * rows * out_w, n * c * rows * cols,
            in_h, in_w, c, f_h, f_w, s_h, s_w, float(op.options.get("padding") == "SAME"), _activation(op)]


def _fully_connected(graph: Graph, op: Op) -> list[float]:
    units, depth = graph.tensors[op.inputs[1]].shape
    outputs = graph.tensors[op.outputs[0]].size
    bias = float(len(op.inputs) > 2 and op.inputs[2] != NO_TENSOR)
    return [1.0, units, outputs, outputs * depth, outputs * _unclipped(graph, op), depth, outputs // max(units, 1),
            bias, _activation(op)]


# ------------------------------------------------------------------- fast paths (kernel_paths)


@lru_cache(maxsize=4096)
def _axis_windows(size: int, filter_size: int, out: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output position along one axis: the window's origin in the input (negative in the
    padding), and the first and past-the-last filter taps that lie inside the input, as the fast
    kernels compute them (fy_begin, fy_end)."""
    origin = np.arange(out, dtype=np.int64) * stride - same_padding(stride, size, filter_size, out)
    begin = np.maximum(-origin, 0)
    end = np.minimum(size - origin, filter_size)
    for array in (origin, begin, end):
        array.flags.writeable = False
    return origin, begin, end


def _matrix_multiply(pixels: int, out_c: int, groups: int) -> list[float]:
    """conv2d.c's multiply over `pixels` output pixels, packed two at a time, each K values in `groups`
    words: per pair, chunks of 16 channels, in each two channels at a time (dot_pair) and the odd one
    alone (dot_single), each over every word; each chunk's sums requantized per pixel (requantize.c).
    An odd last pixel is copied beside itself (`groups` words) and multiplied as a pair."""
    pairs = -(-pixels // 2)
    chunks = pairs * -(-out_c // 16)
    return [pairs, chunks, pairs * (out_c // 2), pairs * (out_c // 2) * groups, pairs * (out_c % 2),
            pairs * (out_c % 2) * groups, 2 * pairs * out_c, (pixels % 2) * groups]


def _conv2d_descriptive(graph: Graph, op: Op, window) -> list[float]:
    n, in_h, in_w, in_c, out_h, out_w, out_c, _, _, s_h, s_w = window
    _, f_h, f_w, _ = graph.tensors[op.inputs[1]].shape
    return [in_h, in_w, in_c, out_c, f_h, f_w, s_h, s_w, float(op.options.get("padding") == "SAME"), _activation(op),
            op_macs(graph, op)]


def _pointwise(graph: Graph, op: Op) -> list[float]:
    # Per pixel: its in_c values packed four at a time, and a last partial word of in_c % 4 values
    # gathered byte by byte (pack_pixel_tail); then the matrix multiply.
    window = _window(graph, op, 1, 1)
    n, _, _, in_c, out_h, out_w, out_c = window[:7]
    pixels, partial = n * out_h * out_w, in_c % 4
    return [1.0, n * out_h, pixels, pixels * (in_c // 4), pixels * (partial > 0), pixels * partial,
            *_matrix_multiply(pixels, out_c, round_up4(in_c) // 4), 2 * -(-pixels // 2) * out_c * _unclipped(graph, op),
            *_conv2d_descriptive(graph, op, window)]


def _im2col(graph: Graph, op: Op) -> list[float]:
    # Per pixel: its window gathered row by row (gather: a row outside the input is one memset, a row
    # inside is memset + memcpy + memset around the columns inside), zeros up to Kp, Kp / 4 words
    # packed; then the matrix multiply.
    _, f_h, f_w, in_c = graph.tensors[op.inputs[1]].shape
    window = _window(graph, op, f_h, f_w)
    n, in_h, in_w, _, out_h, out_w, out_c, _, _, s_h, s_w = window
    k = f_h * f_w * in_c
    kp, pixels = round_up4(k), n * out_h * out_w
    fills, copies, outside_rows = _gather_calls(in_h, in_w, in_c, f_h, f_w, out_h, out_w, s_h, s_w)
    return [1.0, n * out_h, pixels, pixels * f_h, n * outside_rows, *(n * fills), *(n * copies), pixels * (kp - k),
            pixels * kp // 4, *_matrix_multiply(pixels, out_c, kp // 4),
            2 * -(-pixels // 2) * out_c * _unclipped(graph, op), *_conv2d_descriptive(graph, op, window)]


@lru_cache(maxsize=1024)
def _gather_calls(in_h: int, in_w: int, in_c: int, f_h: int, f_w: int, out_h: int, out_w: int, s_h: int,
                  s_w: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One image's memset (FILL) and memcpy (MEMCPY) trips of gather, and its window rows outside the
    input. The window sits at a 16-aligned address in the scratch buffer, the input image at one in
    the arena (further images of a batch are counted as the first: their alignment is left out)."""
    y0, y_begin, y_end = _axis_windows(in_h, f_h, out_h, s_h)
    x0, x_begin, x_end = _axis_windows(in_w, f_w, out_w, s_w)
    row = f_w * in_c
    fy = np.arange(f_h, dtype=np.int64)
    inside = (fy[None, :] >= y_begin[:, None]) & (fy[None, :] < y_end[:, None])  # [oy, fy]
    oy_in, fy_in = np.nonzero(inside)
    fy_out = np.nonzero(~inside)[1]
    at = (fy_in * row)[:, None]  # [inside row, ox]
    before, after = x_begin * in_c, (f_w - x_end) * in_c
    fills = (fill_trips(np.broadcast_to(row, fy_out.shape), fy_out * row) * out_w
             + fill_trips(np.broadcast_to(before, at.shape[:1] + before.shape), at)
             + fill_trips(np.broadcast_to(after, at.shape[:1] + after.shape), at + x_end * in_c))
    source = ((y0[oy_in] + fy_in)[:, None] * in_w + (x0 + x_begin)[None, :]) * in_c
    copies = memcpy_trips(np.broadcast_to((x_end - x_begin) * in_c, source.shape), at + before, source)
    fills.flags.writeable = copies.flags.writeable = False  # cached
    return fills, copies, int(fy_out.size) * out_w


def _depthwise_fast(graph: Graph, op: Op) -> list[float]:
    # dw_3x3, dw_general: per pixel, per chunk of 32 channels, groups of four channels: a window inside
    # the input runs the unrolled 3 x 3 (group_3x3, on dw_3x3: its own column) or one loop over its taps
    # (group_inside); a window at the border, and the last partial group of C % 4 channels at every
    # pixel, run group_any: per filter row, taps in the padding (the zero point, no load) and taps
    # inside (a word load, or C % 4 byte loads for the partial group). Then each chunk's outputs are
    # requantized (requantize.c).
    _, f_h, f_w, channels = graph.tensors[op.inputs[1]].shape
    window = _window(graph, op, f_h, f_w)
    n, in_h, in_w, _, out_h, out_w, _, rows, cols, s_h, s_w = window
    _, y_begin, y_end = _axis_windows(in_h, f_h, out_h, s_h)
    _, x_begin, x_end = _axis_windows(in_w, f_w, out_w, s_w)
    taps = f_h * f_w
    pixels = n * out_h * out_w
    inside = n * int(np.sum((y_begin == 0) & (y_end == f_h))) * int(np.sum((x_begin == 0) & (x_end == f_w)))
    border = pixels - inside
    taps_in, rows_in = n * rows * cols, n * rows * out_w  # over every pixel: taps and filter rows inside
    border_taps_in, border_rows_in = taps_in - inside * taps, rows_in - inside * f_h
    groups, partial = channels // 4, channels % 4
    has_partial, is_3x3 = float(partial > 0), float(kernel_path(graph, op).name == "dw_3x3")
    return [1.0, n * out_h, pixels, pixels * -(-channels // 32), pixels * channels,
            inside * groups * is_3x3, *(inside * groups * (1 - is_3x3) * np.array([1.0, f_h, taps])),
            border * groups, border * groups * f_h, border_rows_in * groups, border_taps_in * groups,
            (border * taps - border_taps_in) * groups,
            pixels * has_partial, pixels * f_h * has_partial, rows_in * has_partial, taps_in * has_partial,
            taps_in * partial, (pixels * taps - taps_in) * has_partial, pixels * channels * _unclipped(graph, op),
            in_h, in_w, channels, channels, f_h, f_w, s_h, s_w, float(op.options.get("padding") == "SAME"),
            _activation(op), op_macs(graph, op)]


def _dot(graph: Graph, op: Op) -> list[float]:
    # Per batch row: the input's last partial word gathered (depth % 4 bytes); blocks of four units,
    # each a dot_block over the whole words, then per unit the partial word and the requantization;
    # the units past the last block one row each.
    units, depth = graph.tensors[op.inputs[1]].shape
    batches = graph.tensors[op.outputs[0]].size // max(units, 1)
    whole, partial = depth // 4, depth % 4
    blocks, rest = units // 4, units % 4
    bias = float(len(op.inputs) > 2 and op.inputs[2] != NO_TENSOR)
    return [1.0, batches, batches * partial, batches * blocks, batches * blocks * whole, batches * units,
            batches * units * (partial > 0), batches * rest, batches * rest * whole,
            batches * units * _unclipped(graph, op), depth, units, bias, _activation(op)]


def _broadcast(graph: Graph, op: Op) -> list[float]:
    """ADD, SUB, MUL: elements, and for a broadcast the innermost rows the 4-D walk enters."""
    a, b = (graph.tensors[i] for i in op.inputs[:2])
    n = graph.tensors[op.outputs[0]].size
    broadcast = float(a.size != n or b.size != n)
    return [n, broadcast, broadcast * prod(_as_4d(graph.tensors[op.outputs[0]].shape)[:3]), broadcast * n]


def _add_sub(graph: Graph, op: Op) -> list[float]:
    # Per element three requantizations (each input, then the sum), each a step longer for a
    # negative value in portable C: estimated from where the zero points sit (_below_zero_point).
    # With the DSP extension the usual one (shift <= -2) is branch-free, and the shift picks the
    # path: TFLite's multipliers are each input's scale over twice the larger one (the larger
    # input's is 1/2: shift 0), and twice that over 2^20 times the output's.
    a, b, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    n = y.size
    twice_max = 2 * max(_scale(a), _scale(b))
    shifts = [_shift(_scale(a) / twice_max), _shift(_scale(b) / twice_max), _shift(twice_max / (2**20 * _scale(y)))]
    return [1.0, *_broadcast(graph, op), n * (_below_zero_point(a) + _below_zero_point(b)), n * _below_zero_point(y),
            n * shifts.count(-1), n * sum(s >= 0 for s in shifts), _activation(op)]


def _mul(graph: Graph, op: Op) -> list[float]:
    # Per element one requantization of the product: a step longer for a negative product (one
    # input below its zero point, the other not) and for a right shift (scale ratio below 1); with
    # the DSP extension, the path its shift picks (as ADD's).
    a, b, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    n, pa, pb = y.size, _below_zero_point(a), _below_zero_point(b)
    shift = _shift(_scale(a) * _scale(b) / _scale(y))
    return [1.0, *_broadcast(graph, op), n * (pa * (1 - pb) + pb * (1 - pa)),
            n * (_scale(a) * _scale(b) < _scale(y)), n * (shift == -1), n * (shift >= 0), _activation(op)]


def _mean(graph: Graph, op: Op) -> list[float]:
    # Whatever axes are reduced, the kernel visits every input element once per output element's
    # sum: output elements × reduced elements = input elements.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return [1.0, y.size, x.size, x.size / max(y.size, 1), _as_4d(y.shape)[3]]


def _softmax(graph: Graph, op: Op) -> list[float]:
    # Per row: a pass for the maximum, one for the sum of exps, one for the outputs. How many exps
    # are computed depends on the values (differences below diff_min are skipped), which follow
    # from beta × input scale.
    x = graph.tensors[op.inputs[0]]
    depth = x.shape[-1] if x.shape else 1
    beta = float(op.options.get("beta", 1.0))
    return [1.0, x.size // max(depth, 1), x.size, depth, _log2(beta * _scale(x))]


def _reshape(graph: Graph, op: Op) -> list[float]:
    # The arena planner aliases the output to the input (reuse_rule), so the kernel copies nothing;
    # an output it cannot alias (a constant input) is copied with memmove.
    out = graph.tensors[op.outputs[0]]
    copies = copy_trips(out.nbytes, 0, 0) if reuse_rule(graph, op) is None else _NO_CALLS
    return [1.0, *copies, out.nbytes]


def _lookup(graph: Graph, op: Op) -> list[float]:
    # LOGISTIC, TANH: one table lookup per element.
    return [1.0, graph.tensors[op.outputs[0]].size]


def _requantize(graph: Graph, op: Op) -> list[float]:
    # RELU, RELU6: per element a requantization and a clamp. Requantizing takes a longer path for a
    # right shift (input/output scale ratio below 1, the same for every element) and a step more
    # for a value below the input's zero point.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    n = y.size
    return [1.0, n, n * (_scale(x) < _scale(y)), n * _below_zero_point(x), *_quantization(x, y)]


def _leaky_relu(graph: Graph, op: Op) -> list[float]:
    # One of two requantizations per element, picked by the sign of input - zero point: the
    # identity one (scale ratio) for values above it, the alpha one (ratio × alpha) below.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    n, below, ratio = y.size, _below_zero_point(x), _scale(x) / _scale(y)
    alpha = float(op.options.get("alpha", 0.2))
    right_shifted = n * ((1 - below) * (ratio < 1) + below * (ratio * alpha < 1))
    return [1.0, n, n * below, right_shifted, *_quantization(x, y), alpha]


def _hard_swish(graph: Graph, op: Op) -> list[float]:
    # The per-element branches on the relu-ish exponent's sign are the same for every element:
    # its multiplier is (input scale / 128) / (3 / 32768), exponent > 0 from 1 up, < 0 below 1/2.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    exponent = frexp(_scale(x) / 128 / (3 / 32768))[1]
    n = y.size
    return [1.0, n, n * (exponent > 0), n * (exponent < 0), *_quantization(x, y)]


def _quantize(graph: Graph, op: Op) -> list[float]:
    # float32 -> int8 divides and rounds each element; int8 -> int8 requantizes it (as RELU does).
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    n = y.size
    if x.dtype == "float32":
        return [1.0, n, 0.0, 0.0, 0.0, 0.0, _zero_point(y), 0.0]
    return [1.0, 0.0, n, n * (_scale(x) < _scale(y)), n * _below_zero_point(x), *_quantization(x, y)]


def _dequantize(graph: Graph, op: Op) -> list[float]:
    x = graph.tensors[op.inputs[0]]
    return [1.0, x.size, _zero_point(x)]


def _pad(graph: Graph, op: Op) -> list[float]:
    # The kernel walks the output in 4-D, one innermost row (the last dim) at a time: a row inside
    # the input is memset (before) + memmove (the input row) + memset (after); a row in the padding
    # is one memset. Which calls run word by word depends on each address's alignment.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    before, after = _paddings(graph, op, x, y)
    dims, out = _as_4d(x.shape), _as_4d(y.shape)
    before, after = _as_4d(before, 0), _as_4d(after, 0)
    inside_axes = [(np.arange(o) >= b) & (np.arange(o) < b + d) for o, b, d in zip(out[:3], before, dims)]
    inside = (inside_axes[0][:, None, None] & inside_axes[1][None, :, None] & inside_axes[2][None, None, :]).ravel()
    row_at = np.arange(inside.size, dtype=np.int64) * out[3]
    starts = row_at[inside]
    copies = copy_trips(dims[3], starts + before[3], np.arange(starts.size, dtype=np.int64) * dims[3])
    fills = (fill_trips(before[3], starts) + fill_trips(after[3], starts + before[3] + dims[3])
             + fill_trips(out[3], row_at[~inside]))
    return [1.0, out[0] * out[1], inside.size, *copies, *fills, y.size, x.size, len(x.shape)]


def _transpose(graph: Graph, op: Op) -> list[float]:
    # The output is walked in 4-D order; when the last dim stays last its rows are memmoved,
    # otherwise every element is gathered one by one through the input strides.
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    rank = len(x.shape)
    perm = _constant_ints(graph, op, 1, list(range(rank)))
    perm = [p % rank for p in perm] if len(perm) == rank else list(range(rank))
    in_stride = [prod(x.shape[d + 1:]) for d in range(rank)]
    size = _as_4d(y.shape)
    step = _as_4d([in_stride[p] for p in perm], 0)
    rows = size[0] * size[1] * size[2]
    if step[3] == 1:
        base = (np.arange(size[0])[:, None, None] * step[0] + np.arange(size[1])[None, :, None] * step[1]
                + np.arange(size[2])[None, None, :] * step[2]).ravel()
        copies, gathered = copy_trips(size[3], np.arange(rows, dtype=np.int64) * size[3], base), 0
    else:
        copies, gathered = _NO_CALLS, rows * size[3]
    return [1.0, size[0] * size[1], rows, gathered, *copies, y.size, rank]


def _concatenation(graph: Graph, op: Op) -> list[float]:
    # For each of `outer` output slices, one memmove per input of its slice (dims[axis] × inner
    # bytes); the shape checks loop over every input's dims first.
    y = graph.tensors[op.outputs[0]]
    ins = [graph.tensors[i] for i in op.inputs if i != NO_TENSOR]
    rank = len(y.shape)
    axis = int(op.options.get("axis", 0)) % max(rank, 1)
    outer, inner = prod(y.shape[:axis]), prod(y.shape[axis + 1:])
    chunks = [t.shape[axis] * inner if len(t.shape) == rank else t.size for t in ins]
    slice_start = np.arange(outer, dtype=np.int64)
    copies = np.zeros(len(COPY))
    for k, chunk in enumerate(chunks):
        copies += copy_trips(chunk, slice_start * sum(chunks) + sum(chunks[:k]), slice_start * chunk)
    return [1.0, len(ins), len(ins) * rank, outer, *copies, y.size, rank - axis]


def _resize_nearest(graph: Graph, op: Op) -> list[float]:
    # Per output row one index computation, per output pixel another and a memmove of `depth`
    # bytes from the nearest input pixel. An index computation takes a longer path with
    # align_corners (another scale, then a rounding check unless v is past the input's end) and
    # with half_pixel_centers (a clamp at 0).
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    batches, in_h, in_w, depth = _as_4d(x.shape)
    _, out_h, out_w, _ = _as_4d(y.shape)
    align, half = bool(op.options.get("align_corners", False)), bool(op.options.get("half_pixel_centers", False))
    iy, y_inside = _nearest_indices(in_h, out_h, align, half)
    ix, x_inside = _nearest_indices(in_w, out_w, align, half)
    source = ((np.arange(batches)[:, None, None] * in_h + iy[None, :, None]) * in_w + ix[None, None, :]).ravel() * depth
    copies = copy_trips(depth, np.arange(source.size, dtype=np.int64) * depth, source)
    rows, pixels = batches * out_h, source.size
    aligned_scale = align * (rows * (out_h > 1) + pixels * (out_w > 1))
    rounding_checks = align * batches * (y_inside.sum() + out_h * x_inside.sum())
    return [1.0, rows, pixels, aligned_scale, rounding_checks, half * (rows + pixels), *copies, depth, in_h * in_w,
            out_h * out_w]


def _generic(graph: Graph, op: Op) -> list[float]:
    ins = [graph.tensors[i] for i in op.inputs if i != NO_TENSOR]
    act = [t for t in ins if not t.is_constant]
    outs = [graph.tensors[i] for i in op.outputs]
    return [1.0, sum(t.size for t in act), sum(t.size for t in outs), op_macs(graph, op),
            sum(t.nbytes for t in ins if t.is_constant), len(ins)]


# ------------------------------------------------------------------------------------ helpers


def copy_trips(n, dst, src) -> np.ndarray:
    """The paths and loop trips of the firmware's memmove (newlib-nano, forward) summed over calls
    copying `n` bytes from byte offset `src` to `dst` (scalars or arrays, one entry per call;
    offsets count from the buffers' starts, which the arena and the plan align to 16): see COPY.
    With n >= 16 and both addresses 4-aligned it copies 16 bytes at a time, then 4 (when n % 16
    >= 4), then the last n % 4 bytewise; otherwise every byte on its own."""
    n, dst, src = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                                      np.asarray(src, dtype=np.int64))
    fast = (n >= 16) & ((dst | src) % 4 == 0)
    words = n % 16 // 4
    return np.array([n.size, np.where(fast, n % 4, n).sum(), fast.sum(), (n // 16)[fast].sum(),
                     (fast & (words > 0)).sum(), words[fast].sum()], dtype=np.float64)


def fill_trips(n, dst) -> np.ndarray:
    """The paths and loop trips of the firmware's memset (newlib-nano) summed over calls filling `n`
    bytes at byte offset `dst` (as copy_trips): see FILL. It stores bytes until the address is
    4-aligned, then (with 4 bytes or more left) 16-byte blocks when 16 or more are left, words,
    and the last bytes."""
    n, dst = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(dst, dtype=np.int64))
    head = np.minimum(-dst % 4, n)
    rest = n - head
    return np.array([n.size, (head > 0).sum(), head.sum(), (rest >= 4).sum(), (rest >= 16).sum(), (rest // 16).sum(),
                     (rest % 16 // 4).sum(), (rest % 4).sum()], dtype=np.float64)


def memcpy_trips(n, dst, src) -> np.ndarray:
    """The paths and loop trips of the firmware's memcpy (newlib's Armv7-M assembly) summed over calls
    (as copy_trips): see MEMCPY. Fewer than 8 bytes at an unaligned address go byte by byte (after 3);
    otherwise, once the destination is 4-aligned when neither address is (1 to 3 bytes), words in
    blocks of 64 bytes, then of 16, then single words, and the last n % 4 bytes."""
    n, dst, src = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(dst, dtype=np.int64),
                                      np.asarray(src, dtype=np.int64))
    aligned = (dst | src) % 4 == 0
    bytewise = ~aligned & (n < 8)
    realign = ~aligned & ~bytewise & (src % 4 != 0) & (dst % 4 != 0)
    m = np.where(realign, n - (4 - dst % 4), n)[~bytewise]
    return np.array([n.size, m.size, realign.sum(), (m // 64).sum(), (m % 64 // 16).sum(), (m % 16 // 4).sum(),
                     (m % 4 > 0).sum(), bytewise.sum(), np.maximum(n[bytewise] - 3, 0).sum()], dtype=np.float64)


def _nearest_indices(in_size: int, out_size: int, align_corners: bool,
                     half_pixel_centers: bool) -> tuple[np.ndarray, np.ndarray]:
    """The input index each output index reads along one axis, in float32 as the kernel (and
    TFLite's reference ResizeNearestNeighbor) computes it, and whether the scaled position v lay
    inside the input (else the kernel takes the last index at once)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(max(out_size, 1))
    v = (np.arange(out_size, dtype=f32) + f32(0.5 if half_pixel_centers else 0.0)) * scale
    inside = v < f32(in_size)
    index = np.floor(np.where(inside, v, f32(0))).astype(np.int64)
    if align_corners:
        index += (v >= index.astype(f32) + f32(0.5)) & (index < 1 << 23)
    return np.where(inside, np.clip(index, 0, in_size - 1), in_size - 1), inside


def _as_4d(values, fill: int = 1) -> list[int]:
    """A shape (or per-dim values) right-aligned to 4 dims, as the kernels walk them."""
    values = [int(v) for v in values]
    return [fill] * (4 - len(values)) + values


def _constant_ints(graph: Graph, op: Op, position: int, default) -> list[int]:
    """A constant integer operand's values (paddings, perm), or `default` when it is absent."""
    if len(op.inputs) <= position or op.inputs[position] == NO_TENSOR:
        return default
    data = graph.tensors[op.inputs[position]].data
    return default if data is None else [int(v) for v in np.asarray(data).ravel()]


def _paddings(graph: Graph, op: Op, x, y) -> tuple[list[int], list[int]]:
    """PAD's (before, after) per dim; without a constant paddings operand, all of it after."""
    rank = len(x.shape)
    flat = _constant_ints(graph, op, 1, [])
    if len(flat) != 2 * rank:
        return [0] * rank, [o - i for o, i in zip(y.shape, x.shape)]
    return flat[0::2], flat[1::2]


def _below_zero_point(t) -> float:
    """The share of an int8 tensor's values below its zero point if they spread evenly over the
    int8 range: (zero point + 128) / 256. A requantization of such a value takes a longer path
    (a negative product); the board's real values are unknown before it runs, so this is the
    estimate (exact for ReLU outputs, whose zero point is -128)."""
    return (_zero_point(t) + 128) / 256 if t.dtype == "int8" else 0.0


def _quantization(x, y) -> list[float]:
    """Descriptive columns of a requantizing op: both zero points and the log2 scale ratio."""
    return [_zero_point(x), _zero_point(y), _log2(_scale(x) / _scale(y))]


def _scale(t) -> float:
    q = t.quantization
    return float(q.scale[0]) if q is not None and len(q.scale) else 1.0


def _zero_point(t) -> float:
    q = t.quantization
    return float(q.zero_point[0]) if q is not None and len(q.zero_point) else 0.0


def _unclipped(graph: Graph, op: Op) -> float:
    """Whether the output clamp leaves negative results alone (no fused RELU or RELU6): every output
    then takes the clamp's longer branch, where a RELU's clamp skips it for each negative result (how
    many there are depends on the values: the regressors learn the usual share). Read from the fused
    activation alone, which an architecture spec knows before the model is converted (an output's
    zero point would say more, but only calibration sets it)."""
    return float(op.options.get("fused_activation_function") not in ("RELU", "RELU6"))


def _shift(real: float) -> int:
    """The shift of TFLite's QuantizeMultiplier for a positive `real` (real = q * 2^shift, q in
    [1/2, 1) rounded to 31 bits): which path the runtime's requantization takes."""
    if not (real > 0 and isfinite(real)):
        return 0
    fraction, shift = frexp(real)
    return shift + (round(fraction * 2**31) == 2**31)


def _log2(value: float) -> float:
    return log2(value) if value > 0 and isfinite(value) else 0.0


_WINDOW = ("in_h", "in_w", "in_c", "out_c", "kernel_h", "kernel_w", "stride_h", "stride_w")
COPY = ("copy_calls", "copy_bytes", "copy_word_calls", "copy_blocks", "copy_word_phases", "copy_words")
FILL = ("fill_calls", "fill_unaligned_calls", "fill_head_bytes", "fill_word_phases", "fill_block_phases",
        "fill_blocks", "fill_words", "fill_tail_bytes")
MEMCPY = ("memcpy_calls", "memcpy_word_calls", "memcpy_realigned", "memcpy_blocks64", "memcpy_blocks16",
          "memcpy_words", "memcpy_tails", "memcpy_byte_calls", "memcpy_byte_loops")
_NO_CALLS = (0.0,) * len(COPY)
_QUANT = ("input_zero_point", "output_zero_point", "log2_scale_ratio")
_MULTIPLY = ("pixel_pairs", "channel_chunks", "channel_pairs", "pair_words", "single_channels", "single_words",
             "requantized", "odd_pixel_words", "requantized_unclipped")
_DEPTHWISE_FAST = ("rows", "pixels", "channel_chunks", "requantized", "inside_3x3_groups", "inside_groups",
                   "inside_group_rows", "inside_group_taps", "border_groups", "border_group_rows",
                   "border_group_rows_inside", "border_group_taps_inside", "border_group_taps_padding",
                   "partial_groups", "partial_group_rows", "partial_group_rows_inside", "partial_group_taps_inside",
                   "partial_bytes", "partial_group_taps_padding", "requantized_unclipped")
_SHIFT_PATHS = ("shift_minus_one", "shift_nonnegative")  # requantizations off the usual path (shift <= -2)
_BROADCAST = ("elements", "broadcast", "broadcast_rows", "broadcast_elements")


def _kind(kind: str, loops: tuple[str, ...], parameters: tuple[str, ...], compute, principal: tuple[str, ...] = (),
          floats: tuple[str, ...] = ()) -> KindFeatures:
    assert set(principal) | set(floats) <= {"one", *loops}, f"{kind}: {principal}, {floats} not among its loops"
    return KindFeatures(kind, ("one", *loops, *parameters), 1 + len(loops), compute, principal, floats)


# The fast paths' principal loops (a board on the reference paths has no regressor for them, so a
# model transferred from it fits them on the new board's few layers): the packing, the dot products'
# words, the requantization, and per pixel the window gather's calls.
_MULTIPLY_PRINCIPAL = ("one", "pixels", "packed_words", "pixel_pairs", "channel_chunks", "pair_words", "single_words",
                       "requantized")


_KINDS = (
    _kind("CONV_2D", ("rows", "pixels", "outputs", "window_rows", "window_taps", "macs_inside", "channel_checks",
                      "outputs_unclipped"),
          (*_WINDOW, "same_padding", "activation", "macs"), _conv2d),
    _kind("CONV_2D.pointwise", ("rows", "pixels", "packed_words", "partial_words", "partial_bytes", *_MULTIPLY),
          (*_WINDOW, "same_padding", "activation", "macs"), _pointwise, _MULTIPLY_PRINCIPAL),
    _kind("CONV_2D.im2col", ("rows", "pixels", "window_rows", "rows_outside", *FILL, *MEMCPY, "zero_bytes",
                             "packed_words", *_MULTIPLY), (*_WINDOW, "same_padding", "activation", "macs"), _im2col,
          (*_MULTIPLY_PRINCIPAL, "window_rows", "fill_calls", "memcpy_calls")),
    _kind("DEPTHWISE_CONV_2D", ("rows", "pixels", "outputs", "window_rows", "macs_inside", "channel_checks",
                                "outputs_unclipped"),
          (*_WINDOW, "depth_multiplier", "same_padding", "activation", "macs"), _depthwise),
    _kind("DEPTHWISE_CONV_2D.dw", _DEPTHWISE_FAST, (*_WINDOW, "same_padding", "activation", "macs"),
          _depthwise_fast, ("one", "pixels", "channel_chunks", "requantized", "inside_3x3_groups", "inside_group_taps",
                            "border_group_taps_inside", "border_group_taps_padding", "partial_group_taps_inside",
                            "partial_group_taps_padding")),
    _kind("AVERAGE_POOL_2D", ("rows", "pixels", "outputs", "window_rows", "window_taps"),
          ("in_h", "in_w", "channels", "kernel_h", "kernel_w", "stride_h", "stride_w", "same_padding", "activation"),
          _pool),
    _kind("FULLY_CONNECTED", ("units", "outputs", "macs", "outputs_unclipped"),
          ("depth", "batches", "bias", "activation"),
          _fully_connected),
    _kind("FULLY_CONNECTED.dot", ("batches", "partial_bytes", "blocks", "block_words", "outputs", "partial_words",
                                  "single_units", "single_words", "outputs_unclipped"), ("depth", "units", "bias",
                                                                                        "activation"),
          _dot, ("one", "batches", "blocks", "block_words", "outputs", "single_words")),
    _kind("ADD", (*_BROADCAST, "inputs_below_zero_point", "output_below_zero_point", *_SHIFT_PATHS), ("activation",),
          _add_sub),
    _kind("MUL", (*_BROADCAST, "negative_products", "right_shifted", *_SHIFT_PATHS), ("activation",), _mul),
    _kind("MEAN", ("outputs", "elements"), ("reduced", "depth"), _mean),
    _kind("SOFTMAX", ("rows", "elements"), ("depth", "log2_beta_scale"), _softmax),
    _kind("RESHAPE", COPY, ("bytes",), _reshape),
    _kind("PAD", ("outer_rows", "rows", *COPY, *FILL), ("elements", "input_elements", "rank"), _pad),
    _kind("TRANSPOSE", ("outer_rows", "rows", "gathered", *COPY), ("elements", "rank"), _transpose),
    _kind("CONCATENATION", ("inputs", "input_dims", "outer", *COPY), ("elements", "axis_from_end"), _concatenation),
    _kind("RESIZE_NEAREST_NEIGHBOR", ("rows", "pixels", "aligned_scale", "rounding_checks", "half_pixel_clamps",
                                      *COPY), ("depth", "input_pixels", "output_pixels"), _resize_nearest,
          floats=("rows", "pixels", "aligned_scale", "rounding_checks", "half_pixel_clamps")),
    _kind("LOGISTIC", ("elements",), (), _lookup),
    _kind("RELU", ("elements", "right_shifted", "below_zero_point"), _QUANT, _requantize),
    _kind("LEAKY_RELU", ("elements", "below_zero_point", "right_shifted"), (*_QUANT, "alpha"), _leaky_relu),
    _kind("HARD_SWISH", ("elements", "left_shifted", "right_shifted"), _QUANT, _hard_swish),
    _kind("QUANTIZE", ("from_float", "from_int8", "right_shifted", "below_zero_point"), _QUANT, _quantize,
          floats=("from_float",)),
    _kind("DEQUANTIZE", ("elements",), ("input_zero_point",), _dequantize, floats=("elements",)),
    _kind(GENERIC, ("input_elements", "output_elements", "macs"), ("constant_bytes", "inputs"), _generic),
)
# Kinds whose kernels share another kind's loop structure: the same features, a regressor of their own.
_SAME_LOOPS = {"MAX_POOL_2D": "AVERAGE_POOL_2D", "LOG_SOFTMAX": "SOFTMAX", "TANH": "LOGISTIC", "RELU6": "RELU"}
KINDS: dict[str, KindFeatures] = {k.kind: k for k in _KINDS}
KINDS.update({kind: replace(KINDS[like], kind=kind) for kind, like in _SAME_LOOPS.items()})
# SQUEEZE runs RESHAPE's kernel, SUB ADD's (but for one instruction), and the two depthwise fast paths
# one loop nest that differs only in the interior groups (fast() in depthwise_conv2d.c): same
# features, same regressor.
_SAME_KERNEL = {"SQUEEZE": "RESHAPE", "SUB": "ADD", "DEPTHWISE_CONV_2D.dw_3x3": "DEPTHWISE_CONV_2D.dw",
                "DEPTHWISE_CONV_2D.dw_general": "DEPTHWISE_CONV_2D.dw"}


def kind_of(op_type: str, path: str = REFERENCE.name) -> str:
    """The regressor an operator type gets on a kernel path: its own type on the reference path
    (SQUEEZE shares RESHAPE's, SUB ADD's), "TYPE.path" on a fast path (both depthwise paths share
    DEPTHWISE_CONV_2D.dw), GENERIC for a type without features."""
    kind = op_type if path == REFERENCE.name else f"{op_type}.{path}"
    kind = _SAME_KERNEL.get(kind, kind)
    return kind if kind in KINDS else GENERIC


def op_kind(graph: Graph, op: Op, fast: bool = True) -> str:
    """The kind of `op` on the kernel path the runtime takes for it (`fast`: on a board that takes
    the fast paths, hwbench.kernel_paths.fast_paths_for)."""
    return kind_of(op.type, kernel_path(graph, op, fast).name)


def extractor(kind: str) -> KindFeatures:
    return KINDS.get(kind, KINDS[GENERIC])


def feature_names(kind: str) -> tuple[str, ...]:
    return extractor(kind).names


@dataclass(frozen=True)
class GraphFeatures:
    """One graph's features grouped by operator kind: for each kind, the graph op indices and a
    float64 matrix (one row per op, in graph op order)."""

    kinds: dict[str, tuple[np.ndarray, np.ndarray]]  # kind -> (op indices, features)
    n_ops: int


def op_features(graph: Graph, op: Op, fast: bool = True) -> list[float]:
    return extractor(op_kind(graph, op, fast)).compute(graph, op)


def graph_features(graph: Graph, fast: bool = True) -> GraphFeatures:
    """Every op's features, grouped by kind (one matrix per kind, rows in graph op order), on the
    fast kernel paths or (`fast=False`) the reference ones."""
    rows: dict[str, tuple[list[int], list[list[float]]]] = {}
    for i, op in enumerate(graph.ops):
        kind = op_kind(graph, op, fast)
        indices, values = rows.setdefault(kind, ([], []))
        indices.append(i)
        values.append(extractor(kind).compute(graph, op))
    return GraphFeatures(
        kinds={k: (np.array(ix, dtype=np.int64), np.array(v, dtype=np.float64)) for k, (ix, v) in rows.items()},
        n_ops=len(graph.ops))


def generic_features(graph: Graph, indices) -> np.ndarray:
    """GENERIC features of the given ops (for a kind the latency model has no regressor for)."""
    return np.array([_generic(graph, graph.ops[i]) for i in indices], dtype=np.float64).reshape(len(indices), -1)


class FeatureCache:
    """Per-graph features kept while the graph object lives (graphs are treated as immutable:
    a search builds a new Graph per candidate). Keyed by identity, so a lookup costs a dict get."""

    def __init__(self, fast: bool = True):
        self.fast = fast
        self._cache: weakref.WeakKeyDictionary[Graph, GraphFeatures] = weakref.WeakKeyDictionary()

    def get(self, graph: Graph) -> GraphFeatures:
        found = self._cache.get(graph)
        if found is None:
            found = self._cache[graph] = graph_features(graph, self.fast)
        return found

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
