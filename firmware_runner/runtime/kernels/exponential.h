/* What SOFTMAX and LOG_SOFTMAX (softmax.c, log_softmax.c) share: gemmlowp's fixed-point exp and
 * reciprocal (fixedpoint/fixedpoint.h), which TFLite's reference kernels use for int8, reproduced
 * bit for bit in C99, and the walk over the rows of the last axis.
 *
 * A value in "Qm" has m integer bits and 31 - m fractional bits in an int32_t. Every addition
 * wraps (gemmlowp's int32 adds would be undefined on overflow; in TFLite's valid ranges they
 * never overflow, and with a damaged plan the kernels must still have no undefined behaviour), so
 * the results equal TFLite's wherever TFLite's own are defined. */
#ifndef HWB_EXPONENTIAL_H
#define HWB_EXPONENTIAL_H

#include <stdint.h>

#include "../hwb_ops.h"
#include "../hwb_quant.h"

static inline int32_t hwb_fp_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t hwb_fp_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t hwb_fp_mul(int32_t a, int32_t b) { return hwb_saturating_rounding_doubling_high_mul(a, b); }

/* Leading zero bits of x (32 for 0), without compiler builtins: Cortex-M0 has no CLZ anyway and
 * this runs once per row. */
static inline int32_t hwb_fp_clz(uint32_t x) {
    int32_t n = 0;
    if (x == 0) return 32;
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        n++;
    }
    return n;
}

/* SaturatingRoundingMultiplyByPOT with exponent 0..31: x * 2^exponent, saturating. Negative
 * exponents never reach it from a valid computation; they return x unchanged. */
static inline int32_t hwb_fp_saturating_shl(int32_t x, int32_t exponent) {
    if (exponent <= 0) return x;
    if (exponent > 31) return x > 0 ? INT32_MAX : (x < 0 ? INT32_MIN : 0);
    int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return hwb_shift_left_wrap(x, exponent); /* exact: |x| <= threshold */
}

/* gemmlowp RoundingHalfSum: (a + b) / 2 rounded half away from zero. */
static inline int32_t hwb_fp_rounding_half_sum(int32_t a, int32_t b) {
    int64_t sum = (int64_t)a + b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* exp(x) for x in [-1/4, 0), x in Q0, result in Q0. */
static inline int32_t hwb_fp_exp_on_interval(int32_t a) {
    const int32_t constant_term = 1895147668;    /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    int32_t x = hwb_fp_add(a, 1 << 28);           /* x = a + 1/8 */
    int32_t x2 = hwb_fp_mul(x, x);
    int32_t x3 = hwb_fp_mul(x2, x);
    int32_t x4 = hwb_fp_mul(x2, x2);
    int32_t x4_over_4 = hwb_rounding_divide_by_pot(x4, 2);
    int32_t poly = hwb_rounding_divide_by_pot(
        hwb_fp_add(hwb_fp_mul(hwb_fp_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return hwb_fp_add(constant_term, hwb_fp_mul(constant_term, hwb_fp_add(x, poly)));
}

/* gemmlowp exp_on_negative_values for a Q5 input (26 fractional bits): exp(a) in Q0. */
static inline int32_t hwb_fp_exp_on_negative_values_q5(int32_t a) {
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = 1 << 24;
    int32_t a_mod_quarter_minus_one_quarter = hwb_fp_sub(a & (one_quarter - 1), one_quarter);
    int32_t result = hwb_fp_exp_on_interval(hwb_fp_saturating_shl(a_mod_quarter_minus_one_quarter, 5));
    uint32_t remainder = (uint32_t)a_mod_quarter_minus_one_quarter - (uint32_t)a;
    /* exp(-2^k) for k = -2..4: the bits 24..30 of the remainder select them (the barrel shifter) */
    for (int32_t k = 0; k < 7; k++)
        if (remainder & (1u << (24 + k))) result = hwb_fp_mul(result, multipliers[k]);
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a in Q0, result in Q0 (Newton-Raphson
 * in Q2). */
static inline int32_t hwb_fp_one_over_one_plus_x(int32_t a) {
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t one_q2 = 1 << 29;
    int32_t half_denominator = hwb_fp_rounding_half_sum(a, INT32_MAX);
    int32_t x = hwb_fp_add(constant_48_over_17, hwb_fp_mul(half_denominator, constant_neg_32_over_17));
    for (int32_t i = 0; i < 3; i++) {
        int32_t one_minus_half_denominator_times_x = hwb_fp_sub(one_q2, hwb_fp_mul(half_denominator, x));
        x = hwb_fp_add(x, hwb_fp_saturating_shl(hwb_fp_mul(x, one_minus_half_denominator_times_x), 2));
    }
    return hwb_fp_saturating_shl(x, 1);
}

/* TFLite GetReciprocal for a positive value x with `integer_bits` integer bits: 1 / x as a Q0
 * fraction and the number of bits x reaches above 1.0 (so 1/x = fraction / 2^bits_over_unit). */
static inline int32_t hwb_fp_reciprocal(int32_t x, int32_t integer_bits, int32_t *num_bits_over_unit) {
    int32_t headroom_plus_one = hwb_fp_clz((uint32_t)x);
    *num_bits_over_unit = integer_bits - headroom_plus_one;
    uint32_t shifted = headroom_plus_one < 32 ? (uint32_t)x << headroom_plus_one : 0u;
    return hwb_fp_one_over_one_plus_x((int32_t)(shifted - 0x80000000u));
}

/* One row of `depth` inputs x to outputs y, given the row's maximum and the kernel's parameters. */
typedef void (*hwb_softmax_row)(const int8_t *x, int8_t *y, int32_t depth, int32_t max_in_row, const void *params);

/* Runs `row` on every row of the last axis, once the operands are checked (input rank >= 1, the
 * output of the same shape). */
static inline void hwb_softmax_rows_s8(const hwb_op_args *args, hwb_softmax_row row) {
    const hwb_tensor *in = &args->inputs[0];
    const int8_t *input = (const int8_t *)in->data;
    int8_t *output = (int8_t *)args->outputs[0].data;
    const int32_t depth = in->dims[in->rank - 1];
    const int32_t rows = hwb_flat_size(in) / depth;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *x = input + r * depth;
        int32_t max_in_row = INT8_MIN;
        for (int32_t c = 0; c < depth; c++)
            if (x[c] > max_in_row) max_in_row = x[c];
        row(x, output + r * depth, depth, max_in_row, args->params);
    }
}

#endif
