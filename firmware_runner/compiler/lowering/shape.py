"""Ops that move bytes without arithmetic: RESHAPE and SQUEEZE (aliases), PAD, TRANSPOSE,
CONCATENATION, RESIZE_NEAREST_NEIGHBOR.

None of them requantizes, exactly like TFLite's int8 kernels: PAD, TRANSPOSE and
RESIZE_NEAREST_NEIGHBOR copy the input bytes whatever the output's quantization, and
CONCATENATION refuses inputs quantized differently from its output (TFLite refuses them too; its
converter gives every input of a concatenation the output's scale and zero point). Constant
operands (paddings, perm, size) are folded into the kernel parameters here.
"""

from __future__ import annotations

import numpy as np

from hwbench.graph import NO_TENSOR, Graph, Op, Tensor
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack, require_dtypes

MAX_RANK = 4  # HWB_MAX_RANK
MAX_INPUTS = 16  # HWB_MAX_INPUTS


def lower_reshape(graph: Graph, op: Op) -> Lowered:
    # The shape operand (if any) is already folded into the output tensor's shape.
    data, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if data.dtype != out.dtype:
        raise Unsupported(f"{data.dtype} to {out.dtype}")
    return Lowered("RESHAPE", [op.inputs[0]])


def _single_io(graph: Graph, op: Op, inputs: int) -> tuple[Tensor, Tensor]:
    """The data input and the output of an op with `inputs` operands and one output, int8, rank <= 4."""
    if len(op.inputs) != inputs or len(op.outputs) != 1 or NO_TENSOR in op.inputs[:inputs]:
        raise Unsupported(f"{len(op.inputs)} inputs and {len(op.outputs)} outputs (expected {inputs} and 1)")
    require_dtypes(graph, op)
    data, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if data.dtype != "int8" or out.dtype != "int8":
        raise Unsupported(f"{data.dtype} data (only int8)")
    for t in (data, out):
        if len(t.shape) > MAX_RANK:
            raise Unsupported(f"rank {len(t.shape)} tensor {t.name!r} (rank {MAX_RANK} at most)")
    return data, out


def _constant_ints(graph: Graph, index: int, what: str) -> np.ndarray:
    t = graph.tensors[index]
    if not t.is_constant:
        raise Unsupported(f"a {what} operand computed at run time (only a constant one)")
    if t.data.dtype.kind not in "iu":
        raise Unsupported(f"{t.data.dtype} {what} (only integers)")
    return np.asarray(t.data).astype(np.int64)


def lower_pad(graph: Graph, op: Op) -> Lowered:
    # PADV2's constant_values operand would be a third input: refused by _single_io.
    data, out = _single_io(graph, op, 2)
    rank = len(data.shape)
    paddings = _constant_ints(graph, op.inputs[1], "paddings")
    if paddings.shape != (rank, 2):
        raise Unsupported(f"paddings of shape {paddings.shape} for a rank-{rank} input (expected ({rank}, 2))")
    if (paddings < 0).any():
        raise Unsupported(f"negative paddings {paddings.tolist()}")
    expected = tuple(int(n + b + a) for n, (b, a) in zip(data.shape, paddings))
    if tuple(out.shape) != expected:
        raise Unsupported(f"output shape {tuple(out.shape)} where paddings {paddings.tolist()} give {expected}")
    # TFLite pads a quantized tensor with the output's zero point (0.0), an unquantized one with 0.
    value = int(out.quantization.zero_point[0]) if data.quantization is not None and out.quantization is not None else 0
    if not -128 <= value <= 127:
        raise Unsupported(f"output zero point {value} outside int8")
    before = [int(b) for b in paddings[:, 0]] + [0] * (MAX_RANK - rank)
    after = [int(a) for a in paddings[:, 1]] + [0] * (MAX_RANK - rank)
    # The C side is hwb_pad_params in runtime/kernels/pad.c: pad_value, before[4], after[4].
    return Lowered("PAD", [op.inputs[0]], pack(value, *before, *after))


def lower_transpose(graph: Graph, op: Op) -> Lowered:
    data, out = _single_io(graph, op, 2)
    rank = len(data.shape)
    perm = _constant_ints(graph, op.inputs[1], "perm")
    if perm.shape != (rank,) or ((perm < -rank) | (perm >= rank)).any():
        raise Unsupported(f"perm {perm.tolist()} for a rank-{rank} input")
    perm = [int(p) + rank if p < 0 else int(p) for p in perm]  # TFLite counts a negative entry from the end
    if sorted(perm) != list(range(rank)):
        raise Unsupported(f"perm {perm} (not a permutation)")
    if tuple(out.shape) != tuple(data.shape[p] for p in perm):
        raise Unsupported(f"output shape {tuple(out.shape)} for perm {perm} of {tuple(data.shape)}")
    # The C side is hwb_transpose_params in runtime/kernels/transpose.c: perm[4], identity past the rank.
    return Lowered("TRANSPOSE", [op.inputs[0]], pack(*perm, *range(rank, MAX_RANK)))


def _quantization(t: Tensor) -> tuple[float, int] | None:
    q = t.quantization
    if q is None:
        return None
    if q.per_channel:
        raise Unsupported(f"per-channel quantized tensor {t.name!r}")
    return float(np.float32(q.scale[0])), int(q.zero_point[0])


def lower_concatenation(graph: Graph, op: Op) -> Lowered:
    if not 1 <= len(op.inputs) <= MAX_INPUTS or len(op.outputs) != 1 or NO_TENSOR in op.inputs:
        raise Unsupported(f"{len(op.inputs)} inputs (1 to {MAX_INPUTS})")
    activation = op.options.get("fused_activation_function", "NONE")
    if activation not in (None, "NONE"):
        raise Unsupported(f"fused activation {activation}")
    out = graph.tensors[op.outputs[0]]
    inputs = [graph.tensors[i] for i in op.inputs]
    for t in [*inputs, out]:
        if t.dtype != "int8":
            raise Unsupported(f"{t.dtype} tensor {t.name!r} (only int8)")
        if len(t.shape) > MAX_RANK:
            raise Unsupported(f"rank {len(t.shape)} tensor {t.name!r} (rank {MAX_RANK} at most)")
    rank = len(out.shape)
    axis = int(op.options.get("axis", 0))
    if not -rank <= axis < rank:
        raise Unsupported(f"axis {axis} of a rank-{rank} output")
    axis %= rank
    for t in inputs:
        if len(t.shape) != rank or any(n != m for d, (n, m) in enumerate(zip(t.shape, out.shape)) if d != axis):
            raise Unsupported(f"input {t.name!r} of shape {tuple(t.shape)} for output {tuple(out.shape)} on axis {axis}")
        # TFLite's int8 kernel copies bytes; its Prepare refuses any rescaling, and so does hwbench.
        if _quantization(t) != _quantization(out):
            raise Unsupported(f"input {t.name!r} quantized as {_quantization(t)} where the output has "
                              f"{_quantization(out)} (int8 CONCATENATION does not rescale, in TFLite either)")
    if sum(t.shape[axis] for t in inputs) != out.shape[axis]:
        raise Unsupported(f"inputs of {[t.shape[axis] for t in inputs]} on axis {axis} for an output of "
                          f"{out.shape[axis]}")
    # The C side is hwb_concatenation_params in runtime/kernels/concatenation.c: axis.
    return Lowered("CONCATENATION", list(op.inputs), pack(axis))


def lower_resize_nearest(graph: Graph, op: Op) -> Lowered:
    data, out = _single_io(graph, op, 2)
    if len(data.shape) != 4 or len(out.shape) != 4:
        raise Unsupported(f"rank-{len(data.shape)} input (TFLite resizes NHWC tensors only)")
    size = _constant_ints(graph, op.inputs[1], "size")
    if size.shape != (2,) or tuple(int(s) for s in size) != tuple(out.shape[1:3]):
        raise Unsupported(f"size {size.tolist()} for output shape {tuple(out.shape)}")
    if out.shape[0] != data.shape[0] or out.shape[3] != data.shape[3]:
        raise Unsupported(f"output shape {tuple(out.shape)} for input shape {tuple(data.shape)}")
    align_corners = bool(op.options.get("align_corners", False))
    half_pixel_centers = bool(op.options.get("half_pixel_centers", False))
    # The C side is hwb_resize_nearest_params in runtime/kernels/resize_nearest.c.
    return Lowered("RESIZE_NEAREST_NEIGHBOR", [op.inputs[0]], pack(int(align_corners), int(half_pixel_centers)))


LOWERINGS = {"RESHAPE": lower_reshape, "SQUEEZE": lower_reshape, "PAD": lower_pad, "TRANSPOSE": lower_transpose,
             "CONCATENATION": lower_concatenation, "RESIZE_NEAREST_NEIGHBOR": lower_resize_nearest}
