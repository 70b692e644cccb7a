"""QUANTIZE (float32 to int8, int8 to int8) and DEQUANTIZE (int8 to float32).

TFLite's quantize.cc takes the requantization multiplier as a *double* quotient of the two float
scales (unlike the activations' float32 quotient); float to int8 divides by the output scale
element by element, so that path needs no multiplier at all.

`requantization_multiplier` is shared with the activations (activations.py): it refuses the
multipliers the TFLite interpreter itself cannot compute without undefined behaviour.
"""

from __future__ import annotations

import math

from hwbench.graph import Graph, Op, Tensor
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack, per_tensor
from firmware_runner.compiler.quantization import quantize_multiplier, round_half_away, scale


def requantization_multiplier(real: float, what: str) -> tuple[int, int]:
    """quantize_multiplier(real), refusing a real multiplier of 2^30 or more.

    The interpreter's QuantizeMultiplier (ai-edge-litert 2.3) does not saturate such a multiplier
    to shift 30 as quantize_multiplier does: it returns shift 31 and up, which
    MultiplyByQuantizedMultiplier applies as `x * (1 << shift)`, undefined behaviour in C++ (x86-64
    takes the count mod 32: a ratio of 2^33 multiplies by 2). Measured; a converter makes these
    for a ReLU whose calibrated input is all negative and wide (its output scale is the minimum)."""
    fraction, exponent = math.frexp(real)
    if round_half_away(fraction * (1 << 31)) == 1 << 31:
        exponent += 1
    if exponent > 30:
        raise Unsupported(f"{what} {real:.6g} (2^{math.log2(real):.1f}; TFLite shifts by 31 bits or more there, "
                          f"which is undefined in C++)")
    return quantize_multiplier(real)


def _operands(graph: Graph, op: Op) -> tuple[Tensor, Tensor]:
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        raise Unsupported(f"{len(op.inputs)} inputs and {len(op.outputs)} outputs (one each expected)")
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if x.size != y.size:
        raise Unsupported(f"output {y.shape} for input {x.shape}")
    return x, y


def lower_quantize(graph: Graph, op: Op) -> Lowered:
    x, y = _operands(graph, op)
    if y.dtype != "int8":
        raise Unsupported(f"{x.dtype} to {y.dtype} (only float32 or int8 to int8)")
    per_tensor(y, "output")
    if x.dtype == "float32":
        # reference_ops::AffineQuantize uses the output tensor's scale and zero point from the plan.
        return Lowered("QUANTIZE", [op.inputs[0]], pack(0, 0))  # quantize_params in runtime/kernels/quantize.c
    if x.dtype != "int8":
        raise Unsupported(f"{x.dtype} to {y.dtype} (only float32 or int8 to int8)")
    per_tensor(x, "input")
    # quantize.cc Prepare: static_cast<double>(input scale) / static_cast<double>(output scale).
    multiplier, shift = requantization_multiplier(float(scale(x)) / float(scale(y)), "requantization multiplier")
    return Lowered("QUANTIZE", [op.inputs[0]], pack(multiplier, shift))  # quantize_params in quantize.c


def lower_dequantize(graph: Graph, op: Op) -> Lowered:
    x, y = _operands(graph, op)
    if x.dtype != "int8" or y.dtype != "float32":
        raise Unsupported(f"{x.dtype} to {y.dtype} (only int8 to float32)")
    per_tensor(x, "input")
    return Lowered("DEQUANTIZE", [op.inputs[0]])  # no parameters: the input tensor's scale and zero point


LOWERINGS = {"QUANTIZE": lower_quantize, "DEQUANTIZE": lower_dequantize}
