"""RELU, RELU6, LEAKY_RELU and HARD_SWISH on int8 (SOFTMAX, LOG_SOFTMAX, LOGISTIC and TANH are in
exponential.py).

Each lowering computes what TFLite's Prepare computes (kernels/activations.cc), in the same
precision: these multipliers are float32 quotients (`input->params.scale / output->params.scale`
with both scales float) widened to double only afterwards, unlike QUANTIZE's double quotient.
Multipliers of 2^30 and more are refused (see quantize.requantization_multiplier).
"""

from __future__ import annotations

import numpy as np

from hwbench.graph import Graph, Op, Tensor
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack, unary
from firmware_runner.compiler.lowering.quantize import requantization_multiplier
from firmware_runner.compiler.quantization import INT8_MAX, INT8_MIN, quantize_multiplier, round_half_away, scale, zero_point

_INT32_LIMIT = 1 << 31


def _float32_ratio(numerator: np.float32, denominator: np.float32) -> float:
    return float(np.float32(numerator) / np.float32(denominator))


def _quantized_bound(value: float, y: Tensor) -> int:
    """QuantizedReluX's `zero_point + static_cast<int32>(roundf(value / scale))`, refusing the scales
    where that conversion overflows (TFLite's result is then whatever the CPU makes of it)."""
    q = round_half_away(float(np.float32(value) / scale(y)))
    if abs(q) >= _INT32_LIMIT - 256:
        raise Unsupported(f"output scale {float(scale(y)):.6g} (the bound {value} overflows int32 on that scale)")
    return zero_point(y) + q


def _requantize_and_clamp(graph: Graph, op: Op, act_max: float | None) -> bytes:
    """The RELU/RELU6 kernel parameters (relu_params in runtime/kernels/relu.c): the multiplier of
    ReluPrepare and the clamp of QuantizedReluX, for activation range [0, act_max]."""
    x, y = unary(graph, op)
    multiplier, shift = requantization_multiplier(_float32_ratio(scale(x), scale(y)), "input/output scale ratio")
    act_min = max(INT8_MIN, _quantized_bound(0.0, y))
    act_high = INT8_MAX if act_max is None else min(INT8_MAX, _quantized_bound(act_max, y))
    if act_min > act_high:  # not reachable with a positive scale; the kernel refuses it, so does this
        raise Unsupported(f"output scale {float(scale(y)):.6g}, zero point {zero_point(y)} "
                          f"(empty clamp {act_min}..{act_high})")
    return pack(multiplier, shift, act_min, act_high)


def lower_relu(graph: Graph, op: Op) -> Lowered:
    return Lowered("RELU", [op.inputs[0]], _requantize_and_clamp(graph, op, None))


def lower_relu6(graph: Graph, op: Op) -> Lowered:
    return Lowered("RELU6", [op.inputs[0]], _requantize_and_clamp(graph, op, 6.0))


def lower_leaky_relu(graph: Graph, op: Op) -> Lowered:
    x, y = unary(graph, op)
    alpha = np.float32(op.options.get("alpha", 0.2))  # the schema's default
    if not np.isfinite(alpha) or alpha < 0:
        raise Unsupported(f"alpha {float(alpha):.6g} (TFLite's multipliers need a finite alpha >= 0)")
    # LeakyReluPrepare: input_scale * alpha / output_scale, all float32, then double.
    alpha_multiplier = float(np.float32(scale(x) * alpha) / scale(y))
    identity_multiplier = _float32_ratio(scale(x), scale(y))
    # leaky_relu_params in runtime/kernels/leaky_relu.c
    return Lowered("LEAKY_RELU", [op.inputs[0]], pack(
        *requantization_multiplier(alpha_multiplier, "input scale * alpha / output scale"),
        *requantization_multiplier(identity_multiplier, "input/output scale ratio")))


def _int16_multiplier(multiplier: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier: the Q31 multiplier rounded to Q15."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def lower_hard_swish(graph: Graph, op: Op) -> Lowered:
    x, y = unary(graph, op)
    # HardSwishPrepare, in float32 throughout.
    hires_input_scale = np.float32(np.float32(1.0 / 128.0) * scale(x))
    reluish_scale = np.float32(np.float32(3.0) / np.float32(32768.0))
    output_multiplier, output_exponent = quantize_multiplier(float(np.float32(hires_input_scale / scale(y))))
    if output_exponent > 0:  # HardSwishPrepare refuses these models too
        raise Unsupported(f"output scale {float(scale(y)):.6g} at or below input scale {float(scale(x)):.6g} / 128 "
                          f"(TFLite refuses it too)")
    reluish_multiplier, reluish_exponent = requantization_multiplier(
        float(np.float32(hires_input_scale / reluish_scale)), "input scale * 256 / 3")
    # hard_swish_params in runtime/kernels/hard_swish.c
    return Lowered("HARD_SWISH", [op.inputs[0]], pack(_int16_multiplier(reluish_multiplier), reluish_exponent,
                                                     _int16_multiplier(output_multiplier), output_exponent))


LOWERINGS = {"RELU": lower_relu, "RELU6": lower_relu6, "LEAKY_RELU": lower_leaky_relu,
             "HARD_SWISH": lower_hard_swish}
