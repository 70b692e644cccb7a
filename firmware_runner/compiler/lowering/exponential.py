"""SOFTMAX, LOG_SOFTMAX, LOGISTIC and TANH on int8: the ops built on exp.

Each lowering computes what TFLite's Prepare computes for its reference kernels
(kernels/activations.cc with kernel_type kReference, which the BUILTIN_REF resolver runs):

- SOFTMAX and LOG_SOFTMAX run in fixed point (gemmlowp's exp), from a Q31 multiplier of
  beta * input_scale * 2^26 (PreprocessSoftmaxScaling) and the smallest input difference worth
  counting (CalculateInputRadius). TFLite fixes their outputs: softmax scale 1/256 and zero point
  -128, log-softmax scale 16/256 and zero point 127.
- LOGISTIC and TANH look each input up in a 256-entry table that TFLite fills in float32 with the
  C library's expf and tanhf (LUTPopulate). This module fills the identical table on the host,
  calling the same C library functions, and the plan stores it as a constant operand.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from functools import cache
from typing import Callable

import numpy as np

from hwbench.graph import Graph, Op, Tensor
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack, unary
from firmware_runner.compiler.quantization import INT8_MAX, INT8_MIN, quantize_multiplier, round_half_away, scale, zero_point

SCALED_DIFF_INTEGER_BITS = 5  # the Q5.26 format of the scaled input differences
MAX_REAL_MULTIPLIER = float((1 << 31) - 1)  # PreprocessSoftmaxScaling's cap
LOG_SOFTMAX_MAX_DEPTH = 4095  # 4096 exps of 1.0 overflow TFLite's Q12.19 sum (log_softmax.c)
_INT32_LIMIT = 1 << 31


def _quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplierGreaterThanOne (double-rounding build): real == multiplier *
    2**(shift - 31) with shift >= 1. Unlike quantization.quantize_multiplier it keeps a shift of 31
    (input_scale * beta >= 16 gets there): TFLite saturates shifts only in its single-rounding build."""
    fraction, shift = math.frexp(real)
    fixed = round_half_away(fraction * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    return fixed, shift


def _softmax_scaling(beta: float, input_scale: np.float32) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling and CalculateInputRadius: (multiplier, left shift, diff_min)."""
    real = min(float(beta) * float(input_scale) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), MAX_REAL_MULTIPLIER)
    if not real > 1.0:  # TFLite aborts (TFLITE_CHECK) on such a model
        raise Unsupported(f"beta {beta!r} with input scale {float(input_scale)!r} (beta * scale * 2^26 must "
                          f"exceed 1)")
    multiplier, left_shift = _quantize_multiplier_greater_than_one(real)
    radius = math.floor(((1 << SCALED_DIFF_INTEGER_BITS) - 1) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS))
                        / float(1 << left_shift))
    return multiplier, left_shift, -radius


def lower_softmax(graph: Graph, op: Op) -> Lowered:
    x, y = unary(graph, op)
    if len(x.shape) < 1:
        raise Unsupported("a scalar input (softmax needs an axis)")
    if zero_point(y) != -128 or abs(float(scale(y)) - 1 / 256) > 0.001 / 256:
        raise Unsupported(f"output quantization {float(scale(y))!r}/{zero_point(y)} (TFLite requires 1/256 and "
                          f"zero point -128)")
    beta = np.float32(op.options.get("beta", 1.0))
    multiplier, left_shift, diff_min = _softmax_scaling(float(beta), scale(x))
    # Field for field the struct hwb_softmax_params of runtime/kernels/softmax.c.
    return Lowered("SOFTMAX", [op.inputs[0]], pack(multiplier, left_shift, diff_min))


def lower_log_softmax(graph: Graph, op: Op) -> Lowered:
    x, y = unary(graph, op)
    if len(x.shape) < 1:
        raise Unsupported("a scalar input (log-softmax needs an axis)")
    if zero_point(y) != 127 or float(scale(y)) != 16 / 256:
        raise Unsupported(f"output quantization {float(scale(y))!r}/{zero_point(y)} (TFLite requires 16/256 and "
                          f"zero point 127)")
    depth = x.shape[-1]
    if depth > LOG_SOFTMAX_MAX_DEPTH:
        raise Unsupported(f"a last axis of {depth} (TFLite's reference sum of exps overflows past "
                          f"{LOG_SOFTMAX_MAX_DEPTH})")
    multiplier, left_shift, diff_min = _softmax_scaling(1.0, scale(x))
    # PreprocessLogSoftmaxScalingExp: the inverse of that scaling, a multiplier below one.
    reverse = float(1 << (31 - left_shift)) / float(multiplier)
    if not 0.0 < reverse < 1.0:  # TFLite aborts (TFLITE_CHECK) here too
        raise Unsupported(f"input scale {float(scale(x))!r} (its inverse scaling is not below one)")
    reverse_multiplier, reverse_shift = quantize_multiplier(reverse)
    # Field for field the struct hwb_log_softmax_params of runtime/kernels/log_softmax.c.
    return Lowered("LOG_SOFTMAX", [op.inputs[0]],
                   pack(multiplier, left_shift, reverse_multiplier, -reverse_shift, diff_min))


@cache
def _libm() -> ctypes.CDLL:
    """The C math library: TFLite's tables come from its expf and tanhf, and their last bits differ
    from numpy's own float32 exp."""
    name = ctypes.util.find_library("m")
    if name is None:
        raise Unsupported("LOGISTIC/TANH tables without the C math library (libm not found on this host)")
    lib = ctypes.CDLL(name)
    for function in ("expf", "tanhf"):
        getattr(lib, function).restype = ctypes.c_float
        getattr(lib, function).argtypes = [ctypes.c_float]
    return lib


def _sigmoid(x: np.float32) -> np.float32:
    return np.float32(1.0) / (np.float32(1.0) + np.float32(_libm().expf(-x)))


def _tanh(x: np.float32) -> np.float32:
    return np.float32(_libm().tanhf(x))


def lookup_table(x: Tensor, y: Tensor, transform: Callable[[np.float32], np.float32]) -> np.ndarray:
    """TFLite's LUTPopulate<int8_t> in float32, step for step: entry k is the output for the input
    value k - 128 (TFLite orders its table by the input's bits instead; the kernels index by value)."""
    inverse_scale = np.float32(1.0) / scale(y)
    table = np.empty(256, np.int8)
    for k, value in enumerate(range(INT8_MIN, INT8_MAX + 1)):
        dequantized = scale(x) * np.float32(value - zero_point(x))
        rescaled = np.float32(round_half_away(float(transform(dequantized) * inverse_scale)))
        shifted = rescaled + np.float32(zero_point(y))
        if not abs(float(shifted)) < _INT32_LIMIT:  # TFLite's int32 conversion would be undefined
            raise Unsupported(f"output scale {float(scale(y))!r} (the table's values overflow int32)")
        table[k] = min(max(int(shifted), INT8_MIN), INT8_MAX)
    return table


def lower_logistic(graph: Graph, op: Op) -> Lowered:
    x, y = unary(graph, op)
    if float(scale(y)) != 1 / 256:
        raise Unsupported(f"output scale {float(scale(y))!r} (TFLite requires 1/256)")
    # No parameters: runtime/kernels/logistic.c reads only the table.
    return Lowered("LOGISTIC", [op.inputs[0], lookup_table(x, y, _sigmoid)])


def lower_tanh(graph: Graph, op: Op) -> Lowered:
    x, y = unary(graph, op)
    # No parameters: runtime/kernels/tanh.c reads only the table.
    return Lowered("TANH", [op.inputs[0], lookup_table(x, y, _tanh)])


LOWERINGS = {"SOFTMAX": lower_softmax, "LOG_SOFTMAX": lower_log_softmax, "LOGISTIC": lower_logistic,
             "TANH": lower_tanh}
