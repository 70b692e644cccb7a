/* MUL, int8, with broadcasting: TFLite's reference int8 mul (reference/integer_ops/mul.h,
 * MulElementwise and BroadcastMul6DSlow). The product of the zero-point-offset inputs is rescaled
 * by one multiplier (MultiplyByQuantizedMultiplier), offset by the output zero point and clamped.
 *
 * Operands: input 1, input 2, output; all int8, per-tensor quantized, zero points from the tensor
 * records. The output may be planned on top of input 1 or input 2 (same size, no broadcast): the
 * loop reads element i of both inputs before it writes element i. */
#include "elementwise.h"

/* Packed by lower_mul in firmware_runner/compiler/lowering/elementwise.py, in this order. */
struct mul_params {
    int32_t output_multiplier;
    int32_t output_shift; /* -31..30 */
    int32_t activation_min;
    int32_t activation_max;
};

static inline int8_t mul_one(int32_t x, int32_t y, int32_t output_offset, const void *params) {
    const struct mul_params *p = (const struct mul_params *)params;
    int32_t product = x * y; /* |.| <= 255 * 255 */
    /* A plan's shift may make the rescaled product any int32: clamp it before adding the offset (the
     * bounds less the offset are small), so nothing overflows and the clamp is hwb_clamp_i32's. The
     * multiplier is >= 0 (checked), as hwb_requantize needs. */
    int32_t scaled = hwb_requantize(product, p->output_multiplier, p->output_shift);
    return (int8_t)(hwb_clamp_i32(scaled, p->activation_min - output_offset, p->activation_max - output_offset) +
                    output_offset);
}

hwb_status hwb_mul_s8_check(const hwb_op_args *args) {
    hwb_status status = hwb_broadcast_operands_s8(args, sizeof(struct mul_params));
    if (status != HWB_OK) return status;
    const struct mul_params *p = (const struct mul_params *)args->params;
    if (!hwb_valid_shift(p->output_shift) || p->output_multiplier < 0 ||
        !hwb_valid_act_s8(p->activation_min, p->activation_max))
        return HWB_ERR_PARAMS;
    return HWB_OK;
}

hwb_status hwb_mul_s8(const hwb_op_args *args) {
    const struct mul_params params = *(const struct mul_params *)args->params;
    return hwb_broadcast_s8(args, mul_one, &params);
}
