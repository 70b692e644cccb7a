/* SOFTMAX, int8 in and out, over the last axis, any beta: TFLite's reference kernel
 * (reference_ops::Softmax<int8_t, int8_t>, the fixed-point gemmlowp path that the BUILTIN_REF
 * resolver runs; the optimized kernels use a float exp table instead and differ).
 *
 * Per row: the difference of each input to the row's maximum, times input_scale * beta (as a Q31
 * multiplier and a left shift) becomes a Q5.26 value; its exp (Q0.31) is summed in Q12.19;
 * each output is exp * (1 / sum) in units of 1/256, minus 128. Differences below diff_min
 * contribute nothing and give -128.
 *
 * Where TFLite aborts: its reference kernel stops the process (TFLITE_CHECK) when a row's sum
 * of exps reaches 512. Every probability is then at most 1/512, below half an output step, so
 * this kernel writes -128 for the whole row: what the exact computation rounds to.
 *
 * Operands: input (int8), output (int8, same shape). Output quantization is fixed by TFLite
 * (scale 1/256, zero point -128) and not read here. The output never shares the input's buffer
 * (the arena planner gives SOFTMAX a fresh one); the kernel reads the input twice. */
#include "exponential.h"

/* Packed by firmware_runner/compiler/lowering/exponential.py (lower_softmax), field for field. */
typedef struct {
    int32_t input_multiplier; /* Q31 multiplier of input_scale * beta * 2^26, in [2^30, 2^31) */
    int32_t input_left_shift; /* its left shift, 0..31 */
    int32_t diff_min;         /* differences below this are skipped (<= 0) */
} hwb_softmax_params;

enum { SUM_LIMIT = 1 << 28 }; /* a Q12.19 sum of exps of 512.0: TFLite's limit */

static int32_t scaled_exp(int32_t input_diff, const hwb_softmax_params *p) {
    int32_t rescaled = hwb_saturating_rounding_doubling_high_mul(
        hwb_shift_left_wrap(input_diff, p->input_left_shift), p->input_multiplier);
    return hwb_fp_exp_on_negative_values_q5(rescaled);
}

/* One row, given its maximum (see "Per row" above). */
static void softmax_row(const int8_t *x, int8_t *y, int32_t depth, int32_t max_in_row, const void *params) {
    const hwb_softmax_params *p = (const hwb_softmax_params *)params;
    int64_t sum_of_exps = 0; /* Q12.19; the maximum alone contributes 1.0 */
    for (int32_t c = 0; c < depth; c++) {
        int32_t input_diff = x[c] - max_in_row;
        if (input_diff >= p->diff_min)
            sum_of_exps += hwb_rounding_divide_by_pot(scaled_exp(input_diff, p), 12);
    }
    if (sum_of_exps >= SUM_LIMIT) {
        for (int32_t c = 0; c < depth; c++) y[c] = INT8_MIN;
        return;
    }

    int32_t num_bits_over_unit;
    int32_t shifted_scale = hwb_fp_reciprocal((int32_t)sum_of_exps, 12, &num_bits_over_unit);
    int32_t exponent = num_bits_over_unit + 31 - 8; /* 23..31 here, since 2^19 <= sum < 2^28 */
    for (int32_t c = 0; c < depth; c++) {
        int32_t input_diff = x[c] - max_in_row;
        if (input_diff >= p->diff_min) {
            int32_t unsat = hwb_rounding_divide_by_pot(
                hwb_saturating_rounding_doubling_high_mul(shifted_scale, scaled_exp(input_diff, p)), exponent);
            y[c] = (int8_t)(hwb_clamp_i32(unsat, 0, 255) - 128);
        } else {
            y[c] = INT8_MIN;
        }
    }
}

hwb_status hwb_softmax_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(hwb_softmax_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_same_s8(in, out) || in->rank < 1) return HWB_ERR_SHAPE;
    const hwb_softmax_params *p = (const hwb_softmax_params *)args->params;
    if (p->input_multiplier < (1 << 30) || p->input_left_shift < 0 || p->input_left_shift > 31 || p->diff_min > 0)
        return HWB_ERR_PARAMS;
    return HWB_OK;
}

hwb_status hwb_softmax_s8(const hwb_op_args *args) {
    hwb_softmax_rows_s8(args, softmax_row);
    return HWB_OK;
}
