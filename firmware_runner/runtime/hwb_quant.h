/* Fixed-point arithmetic exactly as TFLite's reference kernels do it (gemmlowp semantics):
 * a real multiplier M is stored as a Q31 `multiplier` and a power-of-two `shift`. */
#ifndef HWB_QUANT_H
#define HWB_QUANT_H

#include <stdint.h>

/* Shifts a plan may carry: TFLite's multipliers stay within these. */
static inline int hwb_valid_shift(int32_t shift) { return shift >= -31 && shift <= 30; }

/* A value an int8 holds: a zero point, a padding value. */
static inline int hwb_is_int8(int32_t v) { return v >= -128 && v <= 127; }

/* A fused activation's clamp in int8 units: -128 <= min <= max <= 127. */
static inline int hwb_valid_act_s8(int32_t min, int32_t max) { return min >= -128 && min <= max && max <= 127; }

/* u modulo 2^32 as an int32, what TFLite's wrapping int32 arithmetic and static_cast<int32_t> give in
 * practice, spelled without implementation-defined conversions. */
static inline int32_t hwb_wrap_i32(uint32_t u) {
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)(u - 2147483648u) - INT32_MAX - 1;
}

static inline int32_t hwb_clamp_i32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* round(a * b / 2^31), halves away from zero, saturating the single overflow case. */
static inline int32_t hwb_saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31)); /* C99 division truncates toward zero, as TFLite relies on */
}

/* x / 2^exponent rounded to nearest, halves away from zero; exponent in 0..31. */
static inline int32_t hwb_rounding_divide_by_pot(int32_t x, int32_t exponent) {
    int32_t mask = (int32_t)((1LL << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0); /* >> of a negative is arithmetic on gcc */
}

/* x * 2^left_shift in 32 bits, wrapping as TFLite's int32 arithmetic does in practice. */
static inline int32_t hwb_shift_left_wrap(int32_t x, int32_t left_shift) {
    return (int32_t)((uint32_t)x << left_shift);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding): x * M for M = multiplier * 2^(shift - 31). */
static inline int32_t hwb_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift) {
    int32_t left_shift = shift > 0 ? shift : 0;
    int32_t right_shift = shift > 0 ? 0 : -shift;
    return hwb_rounding_divide_by_pot(
        hwb_saturating_rounding_doubling_high_mul(hwb_shift_left_wrap(x, left_shift), multiplier), right_shift);
}

#endif
