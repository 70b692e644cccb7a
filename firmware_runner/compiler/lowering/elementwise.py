"""ADD, SUB and MUL, with broadcasting.

The requantization parameters are computed the way TFLite's Prepare computes them
(lite/kernels/add.cc, sub.cc, mul.cc), including which values are float32 and which double; the
kernels (runtime/kernels/add.c, sub.c, mul.c) then do the arithmetic of the reference int8 kernels
(reference/integer_ops/add.h, reference/sub.h, reference/integer_ops/mul.h). Zero points travel
in the tensor records, not in the parameter structs.
"""

from __future__ import annotations

import numpy as np

from hwbench.graph import Graph, Op
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack, per_tensor, require_dtypes
from firmware_runner.compiler.quantization import activation_range, quantize_multiplier, scale

FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
# TFLite's left shift for 8-bit ADD and SUB: inputs are scaled up by 2^20 before rescaling.
LEFT_SHIFT_INT8 = 20


def fused_activation(op: Op) -> str:
    activation = op.options.get("fused_activation_function", "NONE") or "NONE"
    if activation not in FUSED_ACTIVATIONS:
        raise Unsupported(f"fused activation {activation}")
    return activation


def _operands(graph: Graph, op: Op):
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        raise Unsupported(f"{len(op.inputs)} inputs and {len(op.outputs)} outputs")
    require_dtypes(graph, op)
    a, b = (graph.tensors[i] for i in op.inputs)
    out = graph.tensors[op.outputs[0]]
    for t, what in ((a, "input"), (b, "input"), (out, "output")):
        if t.dtype != "int8":  # constant operands too: the kernels read int8
            raise Unsupported(f"{t.dtype} tensor {t.name!r} (only int8)")
        per_tensor(t, what)
    _check_broadcast(a.shape, b.shape, out.shape)
    return a, b, out


def _check_broadcast(a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...]) -> None:
    rank = max(len(a), len(b))
    pa, pb = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    expected = tuple(x if y == 1 else y for x, y in zip(pa, pb))
    if any(x != y and 1 not in (x, y) for x, y in zip(pa, pb)) or tuple(out) != expected:
        raise Unsupported(f"broadcasting {tuple(a)} with {tuple(b)} to {tuple(out)}")


def quantize_multiplier_smaller_than_one(real: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: TFLite aborts unless 0 < real < 1 and the shift <= 0."""
    if not 0.0 < real < 1.0:
        raise Unsupported(f"{what} rescale factor {real:.6g} (TFLite needs it in (0, 1))")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise Unsupported(f"{what} rescale factor {real:.6g} (rounds to 1)")
    return multiplier, shift


def lower_add_sub(graph: Graph, op: Op) -> Lowered:
    a, b, out = _operands(graph, op)
    lo, hi = activation_range(fused_activation(op), out)
    s1, s2, so = scale(a), scale(b), scale(out)
    # `2 * std::max(float, float)` is a float32 product; the ratios are double divisions; the
    # output's `(1 << 20) * scale` is a float32 product again.
    twice_max = np.float64(np.float32(2) * max(s1, s2))
    real1 = float(np.float64(s1) / twice_max)
    real2 = float(np.float64(s2) / twice_max)
    real_out = float(twice_max / np.float64(np.float32(1 << LEFT_SHIFT_INT8) * so))
    m1, sh1 = quantize_multiplier_smaller_than_one(real1, "input 1")
    m2, sh2 = quantize_multiplier_smaller_than_one(real2, "input 2")
    # SUB takes QuantizeMultiplierGreaterThanOne when real_out > 1, which the int8 reference kernel
    # then feeds to a rounding divide by a negative power of two (undefined): refused like ADD's.
    mo, sho = quantize_multiplier_smaller_than_one(real_out, "output")
    # Field order: struct add_sub_params in runtime/kernels/elementwise.h.
    params = pack(LEFT_SHIFT_INT8, m1, sh1, m2, sh2, mo, sho, lo, hi)
    return Lowered(op.type, [op.inputs[0], op.inputs[1]], params)


def lower_mul(graph: Graph, op: Op) -> Lowered:
    a, b, out = _operands(graph, op)
    lo, hi = activation_range(fused_activation(op), out)
    # mul.cc: `double real_multiplier = input1->params.scale * input2->params.scale /
    # output->params.scale;` is evaluated in float32 and only then widened.
    real = float(np.float32(np.float32(scale(a) * scale(b)) / scale(out)))
    multiplier, shift = quantize_multiplier(real)
    # Field order: struct mul_params in runtime/kernels/mul.c.
    return Lowered("MUL", [op.inputs[0], op.inputs[1]], pack(multiplier, shift, lo, hi))


LOWERINGS = {"ADD": lower_add_sub, "SUB": lower_add_sub, "MUL": lower_mul}
