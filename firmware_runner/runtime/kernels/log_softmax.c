/* LOG_SOFTMAX, int8 in and out, over the last axis: TFLite's reference kernel
 * (reference_integer_ops::LogSoftmax, which the BUILTIN_REF resolver runs for int8).
 *
 * Per row: differences to the row's maximum are scaled to Q5.26 (input_scale * 2^26 as a Q31
 * multiplier and a left shift), their exps summed in Q12.19, and the log of the sum taken in
 * Q5.26 (gemmlowp-style log_x_for_x_greater_than_or_equal_to_1). Each output is
 * (scaled difference - log sum) in units of 1/16 plus 127 (TFLite fixes the output quantization
 * at scale 16/256, zero point 127); differences too small to be represented give -128.
 *
 * Operands: input (int8), output (int8, same shape); the last axis is at most 4095 long (TFLite's
 * Q12.19 sum overflows at 4096). */
#include "exponential.h"

/* Packed by firmware_runner/compiler/lowering/exponential.py (lower_log_softmax), field for field. */
typedef struct {
    int32_t input_multiplier;            /* Q31 multiplier of input_scale * 2^26, in [2^30, 2^31) */
    int32_t input_left_shift;            /* its left shift, 0..31 */
    int32_t reverse_scaling_divisor;     /* Q31 multiplier of the inverse scaling, in [2^30, 2^31) */
    int32_t reverse_scaling_right_shift; /* its right shift, 0..31 */
    int32_t diff_min;                    /* differences below this are skipped (<= 0) */
} hwb_log_softmax_params;

enum { MAX_DEPTH = 4095 };

/* log(x) for x >= 1 given in Q12 (TFLite's log_x_for_x_greater_than_or_equal_to_1<5, 12>), in Q5. */
static int32_t log_q12_to_q5(int32_t input) {
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769, alpha_f = 638450708;
    const int32_t input_integer_bits = 12, accum_integer_bits = 6; /* the sum is accumulated in Q6 */
    const int32_t shifted_quarter = 1 << 23;                        /* 1/4 in Q6 */

    int32_t z_a_headroom_plus_1 = hwb_fp_clz((uint32_t)input);
    int32_t r_a_tmp = hwb_fp_saturating_shl(input, z_a_headroom_plus_1 - 1);
    int32_t r_a_raw = hwb_fp_saturating_shl(hwb_fp_mul(r_a_tmp, sqrt_half), 1);
    int64_t z_a_pow_2_adj = (int64_t)hwb_fp_saturating_shl(input_integer_bits - z_a_headroom_plus_1,
                                                           31 - accum_integer_bits) + shifted_quarter;
    int32_t z_b = hwb_fp_mul(input, sqrt_half);
    int32_t z_b_headroom = hwb_fp_clz((uint32_t)z_b) - 1;
    int32_t r_b_raw = hwb_fp_saturating_shl(input, z_b_headroom);
    int64_t z_b_pow_2_adj = (int64_t)hwb_fp_saturating_shl(input_integer_bits - z_b_headroom,
                                                           31 - accum_integer_bits) - shifted_quarter;
    /* SaturatingAddNonGemmlowp / SaturatingSub */
    z_a_pow_2_adj = z_a_pow_2_adj > INT32_MAX ? INT32_MAX : (z_a_pow_2_adj < INT32_MIN ? INT32_MIN : z_a_pow_2_adj);
    z_b_pow_2_adj = z_b_pow_2_adj > INT32_MAX ? INT32_MAX : (z_b_pow_2_adj < INT32_MIN ? INT32_MIN : z_b_pow_2_adj);

    int32_t r = r_a_raw < r_b_raw ? r_a_raw : r_b_raw;
    int32_t z_pow_2_adj = (int32_t)(z_a_pow_2_adj > z_b_pow_2_adj ? z_a_pow_2_adj : z_b_pow_2_adj);

    int32_t p = hwb_fp_rounding_half_sum(r, sqrt_sqrt_half);
    int32_t q = hwb_fp_sub(r, sqrt_sqrt_half);
    q = hwb_fp_add(q, q);
    int32_t common_sq = hwb_fp_mul(q, q);
    int32_t num = hwb_fp_add(hwb_fp_mul(q, r), hwb_fp_mul(hwb_fp_mul(q, common_sq), alpha_n));
    int32_t denom_minus_one = hwb_fp_add(
        hwb_fp_mul(p, hwb_fp_add(hwb_fp_add(alpha_i, q), hwb_fp_mul(alpha_d, common_sq))), hwb_fp_mul(alpha_f, q));
    int32_t recip_denom = hwb_fp_one_over_one_plus_x(denom_minus_one);
    int32_t num_scaled = hwb_rounding_divide_by_pot(num, accum_integer_bits);
    int32_t sum = hwb_fp_add(hwb_fp_mul(z_pow_2_adj, log_2), hwb_fp_mul(num_scaled, recip_denom));
    return hwb_fp_saturating_shl(sum, 1); /* Q6 to Q5 */
}

/* One row, given its maximum (see "Per row" above). */
static void log_softmax_row(const int8_t *x, int8_t *y, int32_t depth, int32_t max_in_row, const void *params) {
    const hwb_log_softmax_params *p = (const hwb_log_softmax_params *)params;
    int32_t sum_of_exps = 0; /* Q12.19: at most 4095 terms of at most 1.0 */
    for (int32_t c = 0; c < depth; c++) {
        int32_t input_diff = x[c] - max_in_row;
        if (input_diff >= p->diff_min) {
            int32_t diff_q5 = hwb_multiply_by_quantized_multiplier(input_diff, p->input_multiplier,
                                                                   p->input_left_shift);
            sum_of_exps += hwb_rounding_divide_by_pot(hwb_fp_exp_on_negative_values_q5(diff_q5), 12);
        }
    }

    const int32_t log_sum_of_exps = log_q12_to_q5(sum_of_exps);
    /* The smallest difference whose output is representable: (log sum - 2^31) scaled back. */
    int64_t adjusted_diff_min = (int64_t)p->diff_min - 1;
    int32_t reverse = hwb_multiply_by_quantized_multiplier(hwb_fp_add(log_sum_of_exps, INT32_MIN),
                                                           p->reverse_scaling_divisor,
                                                           -p->reverse_scaling_right_shift);
    if (reverse > adjusted_diff_min) adjusted_diff_min = reverse;

    for (int32_t c = 0; c < depth; c++) {
        int32_t input_diff = x[c] - max_in_row;
        if (input_diff > adjusted_diff_min) {
            int32_t diff_q5 = hwb_multiply_by_quantized_multiplier(input_diff, p->input_multiplier,
                                                                   p->input_left_shift);
            int32_t q = hwb_rounding_divide_by_pot(hwb_fp_sub(diff_q5, log_sum_of_exps), 31 - 5 - 4);
            y[c] = (int8_t)hwb_clamp_i32(q + 127, INT8_MIN, INT8_MAX);
        } else {
            y[c] = INT8_MIN;
        }
    }
}

hwb_status hwb_log_softmax_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(hwb_log_softmax_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_same_s8(in, out) || in->rank < 1 || in->dims[in->rank - 1] > MAX_DEPTH) return HWB_ERR_SHAPE;
    const hwb_log_softmax_params *p = (const hwb_log_softmax_params *)args->params;
    if (p->input_multiplier < (1 << 30) || p->input_left_shift < 0 || p->input_left_shift > 31 ||
        p->reverse_scaling_divisor < (1 << 30) || p->reverse_scaling_right_shift < 0 ||
        p->reverse_scaling_right_shift > 31 || p->diff_min > 0)
        return HWB_ERR_PARAMS;
    return HWB_OK;
}

hwb_status hwb_log_softmax_s8(const hwb_op_args *args) {
    hwb_softmax_rows_s8(args, log_softmax_row);
    return HWB_OK;
}
