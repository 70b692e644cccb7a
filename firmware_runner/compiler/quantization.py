"""TFLite's quantization arithmetic on the host, reproduced bit for bit: how it turns real
multipliers into (Q31 multiplier, shift) pairs and how it rounds. The plan compiler uses these so
that the runtime's integer arithmetic sees exactly the numbers TFLite's reference kernels see.

TFLite computes in C++ with float32 tensor scales promoted to double where its code says so; the
functions here take care to do the same operations in the same precision (a float32 division
stays a float32 division). Rounding is half away from zero (std::round), not Python's round.
"""

from __future__ import annotations

import math

import numpy as np

from hwbench.graph import Tensor

INT8_MIN, INT8_MAX = -128, 127


def round_half_away(x: float) -> int:
    """std::round: the nearest integer, halves away from zero (exact for every double)."""
    a = abs(x)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return int(math.copysign(r, x)) if r else 0


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: `real` == multiplier * 2**(shift - 31), multiplier a Q31 int32."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    fixed = round_half_away(fraction * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:  # too small to matter: TFLite flushes it to zero
        return 0, 0
    if shift > 30:
        # LiteRT's reference kernels then shift by 31 or more, which wraps on x86: no exact answer
        # to reproduce, so such a model is refused rather than computed differently.
        from firmware_runner.compiler.lowering.base import Unsupported  # here: the lowering package imports this module

        raise Unsupported(f"a requantization multiplier of {real:.3g} (2^30 or more)")
    return fixed, shift


def double_scale(real: float) -> tuple[int, int, int]:
    """A non-negative double as the runtime's hwb_double_scale carries it: (mantissa low 32 bits,
    mantissa high bits, exponent) with real == mantissa * 2**exponent exactly and the mantissa 0 or in
    [2**52, 2**53) (the double's significand as an integer)."""
    if real == 0.0:
        return 0, 0, 0
    fraction, exponent = math.frexp(real)  # real == fraction * 2**exponent, 0.5 <= fraction < 1
    mantissa = int(fraction * (1 << 53))  # exact: a double has 53 significant bits
    return mantissa & 0xFFFFFFFF, mantissa >> 32, exponent - 53


def scale(tensor: Tensor, channel: int | None = None) -> np.float32:
    """A tensor's (per-tensor, or one channel's) scale as the float32 TFLite stores."""
    q = tensor.quantization
    return np.float32(q.scale[0 if channel is None else channel])


def zero_point(tensor: Tensor) -> int:
    return int(tensor.quantization.zero_point[0]) if tensor.quantization is not None else 0


def quantize_float32(value: float, tensor_scale: np.float32, tensor_zero_point: int) -> int:
    """TFLite's Quantize helper for activation ranges: zero_point + round(value / scale), the
    division in float32."""
    return tensor_zero_point + round_half_away(float(np.float32(value) / tensor_scale))


def activation_range(activation: str | None, output: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: the output clamp of a fused activation."""
    s, zp = scale(output), zero_point(output)
    lo, hi = INT8_MIN, INT8_MAX
    if activation in (None, "NONE"):
        return lo, hi
    if activation == "RELU":
        return max(lo, quantize_float32(0.0, s, zp)), hi
    if activation == "RELU6":
        return max(lo, quantize_float32(0.0, s, zp)), min(hi, quantize_float32(6.0, s, zp))
    if activation == "RELU_N1_TO_1":
        return max(lo, quantize_float32(-1.0, s, zp)), min(hi, quantize_float32(1.0, s, zp))
    raise ValueError(activation)  # the caller refuses other activations by name first
