"""Per-layer latency features, computed from the graph IR alone (before a model is converted or run).

The hwbench runtime's kernels are plain loop nests (firmware_runner/runtime/kernels/*.c), and an
emulated board counts instructions, so a layer's count is close to a linear function of how often
each loop body runs. The features of an operator kind are those trip counts, derived from shapes,
strides and padding exactly as the kernel iterates (a SAME-padded window clipped at the border runs
fewer inner iterations than its nominal MACs say), followed by descriptive parameters (kernel,
stride, channels, fused activation, ...) that tree-based regressors may use. The first `n_linear`
columns of a kind are its trip counts: the ones a linear regressor uses.

Operator kinds: an operator type with its own extractor (SQUEEZE shares RESHAPE's, SUB and MUL
share ADD's); every other type falls back to GENERIC features (element counts, MACs, bytes).

Bump SCHEMA_VERSION whenever a feature's meaning or order changes: artifacts record it and refuse
to load under another.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import lru_cache
from math import prod
from typing import Callable

import numpy as np

from hwbench.costs import op_macs
from hwbench.graph import NO_TENSOR, Graph, Op

SCHEMA_VERSION = 1
GENERIC = "GENERIC"
_ACTIVATION_CODES = {None: 0, "NONE": 0, "RELU": 1, "RELU6": 2, "RELU_N1_TO_1": 3}


@dataclass(frozen=True)
class KindFeatures:
    """The features of one operator kind: column names, how many leading ones are trip counts, and
    the function computing them for one op."""

    kind: str
    names: tuple[str, ...]
    n_linear: int
    compute: Callable[[Graph, Op], list[float]]


def window_extent(size: int, filter_size: int, out: int, stride: int, pad: int) -> int:
    """Sum over output positions of the window taps that lie inside the input along one axis:
    how often the kernel's inner loop over that axis runs per (other indices)."""
    total = out * filter_size
    # Clipped at the start: positions whose window origin o * stride - pad is negative.
    o = 0
    while o < out and o * stride - pad < 0:
        total -= min(pad - o * stride, filter_size)
        o += 1
    # Clipped at the end: positions whose window reaches past the input.
    o = out - 1
    while o >= 0 and o * stride - pad + filter_size > size:
        total -= min(o * stride - pad + filter_size - size, filter_size)
        o -= 1
    return max(total, 0)


def same_padding(stride: int, size: int, filter_size: int, out: int) -> int:
    """TFLite's ComputePaddingWithOffset (dilation 1): the padding before the first element
    (zero for VALID, where the windows never cross the end)."""
    return max((out - 1) * stride + filter_size - size, 0) // 2


def _activation(op: Op) -> float:
    return float(_ACTIVATION_CODES.get(op.options.get("fused_activation_function"), 4))


@lru_cache(maxsize=4096)
def _axis_taps(size: int, filter_size: int, out: int, stride: int) -> int:
    return window_extent(size, filter_size, out, stride, same_padding(stride, size, filter_size, out))


def _window(graph: Graph, op: Op, f_h: int, f_w: int):
    """(batch, in_h, in_w, in_c, out_h, out_w, out_c, rows, cols, stride_h, stride_w) of a 2-D
    window op: rows/cols are the in-input window taps summed over output rows/columns."""
    n, in_h, in_w, in_c = graph.tensors[op.inputs[0]].shape
    _, out_h, out_w, out_c = graph.tensors[op.outputs[0]].shape
    options = op.options
    s_h, s_w = options.get("stride_h", 1), options.get("stride_w", 1)
    return (n, in_h, in_w, in_c, out_h, out_w, out_c, _axis_taps(in_h, f_h, out_h, s_h),
            _axis_taps(in_w, f_w, out_w, s_w), s_h, s_w)


def _conv2d(graph: Graph, op: Op) -> list[float]:
    out_c, f_h, f_w, f_c = graph.tensors[op.inputs[1]].shape
    n, in_h, in_w, in_c, out_h, out_w, _, rows, cols, s_h, s_w = _window(graph, op, f_h, f_w)
    pixels = n * out_h * out_w
    fy = n * out_c * rows * out_w  # the fx loop is entered once per (output, window row)
    fx = n * out_c * rows * cols  # the channel loop is entered once per (output, window tap)
    return [1.0, n * out_h, pixels, pixels * out_c, fy, fx, fx * f_c, out_c,
            in_h, in_w, in_c, out_c, f_h, f_w, s_h, s_w, float(op.options.get("padding") == "SAME"),
            _activation(op), op_macs(graph, op)]


def _depthwise(graph: Graph, op: Op) -> list[float]:
    _, f_h, f_w, out_c = graph.tensors[op.inputs[1]].shape
    n, in_h, in_w, in_c, out_h, out_w, _, rows, cols, s_h, s_w = _window(graph, op, f_h, f_w)
    pixels = n * out_h * out_w
    return [1.0, n * out_h, pixels, pixels * out_c, n * out_c * rows * out_w, n * out_c * rows * cols, out_c,
            in_h, in_w, in_c, out_c, f_h, f_w, s_h, s_w, float(op.options.get("depth_multiplier", 1)),
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
    return [1.0, units, outputs, outputs * depth, depth, outputs // max(units, 1), bias, _activation(op)]


def _elementwise(graph: Graph, op: Op) -> list[float]:
    a, b = (graph.tensors[i] for i in op.inputs[:2])
    out = graph.tensors[op.outputs[0]]
    n = out.size
    broadcast = float(a.size != n or b.size != n)
    shape = (1,) * (4 - len(out.shape)) + tuple(out.shape)
    return [1.0, n, broadcast, broadcast * prod(shape[:3]), broadcast * n, _activation(op)]


def _mean(graph: Graph, op: Op) -> list[float]:
    shape = graph.tensors[op.inputs[0]].shape
    n, h, w, c = (1,) * (4 - len(shape)) + tuple(shape)
    return [1.0, n * c, n * h * w * c, h * w, c]


def _softmax(graph: Graph, op: Op) -> list[float]:
    shape = graph.tensors[op.inputs[0]].shape
    depth = shape[-1] if shape else 1
    size = prod(shape)
    return [1.0, size // max(depth, 1), size, depth]


def _reshape(graph: Graph, op: Op) -> list[float]:
    # The arena planner aliases the output to the input, so the kernel copies nothing; a graph
    # output that is not the input's buffer would be copied (memmove): its bytes are the feature.
    src, dst = op.inputs[0], op.outputs[0]
    copied = float(src in graph.inputs and dst in graph.outputs) * graph.tensors[dst].nbytes
    return [1.0, copied, graph.tensors[dst].nbytes]


def _generic(graph: Graph, op: Op) -> list[float]:
    ins = [graph.tensors[i] for i in op.inputs if i != NO_TENSOR]
    act = [t for t in ins if not t.is_constant]
    outs = [graph.tensors[i] for i in op.outputs]
    return [1.0, sum(t.size for t in act), sum(t.size for t in outs), op_macs(graph, op),
            sum(t.nbytes for t in ins if t.is_constant), len(ins)]


_WINDOW = ("in_h", "in_w", "in_c", "out_c", "kernel_h", "kernel_w", "stride_h", "stride_w")
KINDS: dict[str, KindFeatures] = {k.kind: k for k in (
    KindFeatures("CONV_2D", ("one", "rows", "pixels", "outputs", "window_rows", "window_taps", "macs_inside",
                             "channel_checks", *_WINDOW, "same_padding", "activation", "macs"), 8, _conv2d),
    KindFeatures("DEPTHWISE_CONV_2D", ("one", "rows", "pixels", "outputs", "window_rows", "macs_inside",
                                       "channel_checks", *_WINDOW, "depth_multiplier", "same_padding", "activation",
                                       "macs"), 7, _depthwise),
    KindFeatures("AVERAGE_POOL_2D", ("one", "rows", "pixels", "outputs", "window_rows", "window_taps",
                                     "in_h", "in_w", "channels", "kernel_h", "kernel_w", "stride_h", "stride_w",
                                     "same_padding", "activation"), 6, _pool),
    KindFeatures("MAX_POOL_2D", ("one", "rows", "pixels", "outputs", "window_rows", "window_taps",
                                 "in_h", "in_w", "channels", "kernel_h", "kernel_w", "stride_h", "stride_w",
                                 "same_padding", "activation"), 6, _pool),
    KindFeatures("FULLY_CONNECTED", ("one", "units", "outputs", "macs", "depth", "batches", "bias", "activation"),
                 4, _fully_connected),
    KindFeatures("ADD", ("one", "elements", "broadcast", "broadcast_rows", "broadcast_elements", "activation"),
                 5, _elementwise),
    KindFeatures("MEAN", ("one", "channels", "elements", "window", "depth"), 3, _mean),
    KindFeatures("SOFTMAX", ("one", "rows", "elements", "depth"), 3, _softmax),
    KindFeatures("RESHAPE", ("one", "copied_bytes", "bytes"), 2, _reshape),
    KindFeatures(GENERIC, ("one", "input_elements", "output_elements", "macs", "constant_bytes", "inputs"), 4,
                 _generic),
)}
# SUB and MUL run other kernels than ADD with the same loop structure: same features, own regressor.
# SQUEEZE runs RESHAPE's kernel: same features, same regressor.
_EXTRACTOR = {**KINDS, "SQUEEZE": KINDS["RESHAPE"], "SUB": KINDS["ADD"], "MUL": KINDS["ADD"]}
_SAME_KERNEL = {"SQUEEZE": "RESHAPE"}


def kind_of(op_type: str) -> str:
    """The regressor an operator type gets: its own type when it has its own features (SQUEEZE
    shares RESHAPE's), else GENERIC."""
    if op_type in _SAME_KERNEL:
        return _SAME_KERNEL[op_type]
    return op_type if op_type in _EXTRACTOR else GENERIC


def extractor(op_type: str) -> KindFeatures:
    return _EXTRACTOR.get(op_type, KINDS[GENERIC])


def feature_names(op_type: str) -> tuple[str, ...]:
    return extractor(op_type).names


@dataclass(frozen=True)
class GraphFeatures:
    """One graph's features grouped by operator kind: for each kind, the graph op indices and a
    float64 matrix (one row per op, in graph op order)."""

    kinds: dict[str, tuple[np.ndarray, np.ndarray]]  # kind -> (op indices, features)
    n_ops: int


def op_features(graph: Graph, op: Op) -> list[float]:
    return extractor(op.type).compute(graph, op)


def graph_features(graph: Graph) -> GraphFeatures:
    """Every op's features, grouped by kind (one matrix per kind, rows in graph op order)."""
    rows: dict[str, tuple[list[int], list[list[float]]]] = {}
    for i, op in enumerate(graph.ops):
        kind = kind_of(op.type)
        indices, values = rows.setdefault(kind, ([], []))
        indices.append(i)
        values.append(extractor(op.type).compute(graph, op))
    return GraphFeatures(
        kinds={k: (np.array(ix, dtype=np.int64), np.array(v, dtype=np.float64)) for k, (ix, v) in rows.items()},
        n_ops=len(graph.ops))


def generic_features(graph: Graph, indices) -> np.ndarray:
    """GENERIC features of the given ops (for a kind the latency model has no regressor for)."""
    return np.array([_generic(graph, graph.ops[i]) for i in indices], dtype=np.float64).reshape(len(indices), -1)


class FeatureCache:
    """Per-graph features kept while the graph object lives (graphs are treated as immutable:
    a search builds a new Graph per candidate). Keyed by identity, so a lookup costs a dict get."""

    def __init__(self):
        self._cache: weakref.WeakKeyDictionary[Graph, GraphFeatures] = weakref.WeakKeyDictionary()

    def get(self, graph: Graph) -> GraphFeatures:
        found = self._cache.get(graph)
        if found is None:
            found = self._cache[graph] = graph_features(graph)
        return found

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
