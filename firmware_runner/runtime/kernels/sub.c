/* SUB, int8, with broadcasting: TFLite's reference int8 sub (reference/sub.h, SubElementwise and
 * BroadcastQuantSubSlow). The arithmetic of ADD (runtime/kernels/add.c) with a difference in place
 * of the sum: each input is offset by its zero point, scaled up by 2^left_shift, rescaled to a
 * common scale, subtracted, rescaled to the output and clamped.
 *
 * Operands: input 1, input 2, output; all int8, per-tensor quantized, zero points from the tensor
 * records. The output may be planned on top of input 1 or input 2 (same size, no broadcast): the
 * loop reads element i of both inputs before it writes element i. */
#include "elementwise.h"

static inline int8_t sub_one(int32_t x, int32_t y, int32_t output_offset, const void *params) {
    const struct add_sub_params *p = (const struct add_sub_params *)params;
    /* |x|, |y| <= 255 and left_shift <= 20: the shifted values and their difference fit in 31 bits. With
     * shifts <= 0 and multipliers >= 0 (checked) this is TFLite's MultiplyByQuantizedMultiplierSmallerThanOneExp,
     * which hwb_requantize computes with one rounding. */
    int32_t scaled1 = hwb_requantize(x * (1 << p->left_shift), p->input1_multiplier, p->input1_shift);
    int32_t scaled2 = hwb_requantize(y * (1 << p->left_shift), p->input2_multiplier, p->input2_shift);
    int32_t raw = hwb_requantize(scaled1 - scaled2, p->output_multiplier, p->output_shift) +
                  output_offset;
    return (int8_t)hwb_clamp_i32(raw, p->activation_min, p->activation_max);
}

hwb_status hwb_sub_s8_check(const hwb_op_args *args) { return hwb_add_sub_check(args); }

hwb_status hwb_sub_s8(const hwb_op_args *args) {
    const struct add_sub_params params = *(const struct add_sub_params *)args->params;
    return hwb_broadcast_s8(args, sub_one, &params);
}
