"""AVERAGE_POOL_2D, MAX_POOL_2D and MEAN.

Pooling follows lite/kernels/pooling.cc with the reference int8 kernels
(reference/integer_ops/pooling.h): the output takes the input's integer values (no requantization;
TFLite only DCHECKs that the two quantizations agree), clamped to the fused activation's range. The
kernels compute the padding from the padding type exactly as TFLite's Prepare does, so the plan
carries the type, not the pads.

MEAN follows what LiteRT's BUILTIN_REF int8 MEAN does (lite/kernels/reduce.cc EvalQuantizedMean with
reference/reduce.h QuantizedMeanOrSum): one integer path for every case, any axes (negative or
repeated ones resolved as ResolveAxis does), keep_dims or not, whether or not the input and output
quantizations are equal. The sum of (q - input zero point) over the averaged elements is rescaled by
input_scale / output_scale with 1 / count folded into the multiplier. (Older TFLite releases took
other paths for keep_dims over axes {1, 2} of a 4-D input and for equal quantizations; LiteRT's
reference kernel no longer does, and the tests check every one of those cases against it.)
"""

from __future__ import annotations

from math import prod

import numpy as np

from hwbench.graph import Graph, Op
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack, per_tensor, require_dtypes
from firmware_runner.compiler.lowering.elementwise import fused_activation
from firmware_runner.compiler.quantization import activation_range, quantize_multiplier, scale

PADDINGS = {"VALID": 0, "SAME": 1}  # the kernels' padding codes


def _single_int8(graph: Graph, op: Op, inputs: int = 1):
    if len(op.inputs) != inputs or len(op.outputs) != 1:
        raise Unsupported(f"{len(op.inputs)} inputs and {len(op.outputs)} outputs")
    require_dtypes(graph, op)
    x, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.is_constant:
        raise Unsupported(f"constant input {x.name!r}")
    per_tensor(x, "input")
    per_tensor(out, "output")
    return x, out


def lower_pool(graph: Graph, op: Op) -> Lowered:
    x, out = _single_int8(graph, op)
    if len(x.shape) != 4:
        raise Unsupported(f"rank-{len(x.shape)} input {tuple(x.shape)} (only NHWC)")
    o = op.options
    padding = o.get("padding")
    if padding not in PADDINGS:
        raise Unsupported(f"padding {padding}")
    lo, hi = activation_range(fused_activation(op), out)
    fields = [int(o.get(k, 0)) for k in ("stride_h", "stride_w", "filter_height", "filter_width")]
    if min(fields) < 1:
        raise Unsupported(f"strides {fields[0]}x{fields[1]}, filter {fields[2]}x{fields[3]}")
    # Field order: struct pool_params in runtime/kernels/pooling.h.
    return Lowered(op.type, [op.inputs[0]], pack(*fields, PADDINGS[padding], lo, hi))


def lower_mean(graph: Graph, op: Op) -> Lowered:
    x, out = _single_int8(graph, op, inputs=2)
    axis = graph.tensors[op.inputs[1]]
    if axis.data is None:
        raise Unsupported("mean over axes computed at run time")
    rank, axes = len(x.shape), tuple(int(a) for a in np.asarray(axis.data).ravel())
    if not axes or any(not -rank <= a < rank for a in axes):
        raise Unsupported(f"mean over axes {axes} of a rank-{rank} input")
    if x.size == 0:
        raise Unsupported(f"mean of the empty input {tuple(x.shape)}")
    averaged = {a % rank for a in axes}
    kept_dims = [1 if i in averaged else d for i, d in enumerate(x.shape)]
    dropped_dims = [d for i, d in enumerate(x.shape) if i not in averaged]
    if list(out.shape) != (kept_dims if op.options.get("keep_dims") else dropped_dims):
        raise Unsupported(f"mean of {tuple(x.shape)} over axes {axes} to {tuple(out.shape)}")
    # PrepareMeanOrSum: QuantizeMultiplier(double(input scale) / double(output scale)); then
    # QuantizedMeanOrSum folds 1 / count into it: shift = floor(log2(count)), clamped so that the
    # result stays within 32 bits and the final shift >= -31.
    multiplier, shift = quantize_multiplier(float(np.float64(scale(x)) / np.float64(scale(out))))
    count = prod(x.shape[a] for a in averaged)
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier = (multiplier << extra) // count  # int64 division of non-negatives: floor == truncation
    shift -= extra
    # Field order: struct mean_params in runtime/kernels/mean.c.
    return Lowered("MEAN", [op.inputs[0]], pack(multiplier, shift, sum(1 << a for a in averaged)))


LOWERINGS = {"AVERAGE_POOL_2D": lower_pool, "MAX_POOL_2D": lower_pool, "MEAN": lower_mean}
