/* LEAKY_RELU on int8, as TFLite's reference_ops::QuantizeLeakyRelu: two requantizations of
 * x = in - in_zp, picked by its sign,
 *
 *   x >= 0: out = out_zp + MultiplyByQuantizedMultiplier(x, identity multiplier)   (in_scale / out_scale)
 *   x <  0: out = out_zp + MultiplyByQuantizedMultiplier(x, alpha multiplier)      (in_scale * alpha / out_scale)
 *
 * clamped to int8. Zero points come from the tensors. In place is fine (element i is read first). */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_leaky_relu in firmware_runner/compiler/lowering/activations.py: same fields, same order. */
typedef struct {
    int32_t alpha_multiplier; /* Q31 multiplier and shift for x < 0 */
    int32_t alpha_shift;
    int32_t identity_multiplier; /* for x >= 0 */
    int32_t identity_shift;
} leaky_relu_params;

hwb_status hwb_leaky_relu_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(leaky_relu_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_same_s8(in, out)) return HWB_ERR_SHAPE;
    const leaky_relu_params *p = (const leaky_relu_params *)args->params;
    if (!hwb_valid_shift(p->alpha_shift) || !hwb_valid_shift(p->identity_shift) ||
        !hwb_is_int8(in->zero_point) || !hwb_is_int8(out->zero_point))
        return HWB_ERR_PARAMS;

    return HWB_OK;
}

hwb_status hwb_leaky_relu_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const leaky_relu_params *p = (const leaky_relu_params *)args->params;

    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    const int32_t count = hwb_flat_size(in);
    for (int32_t i = 0; i < count; i++) {
        const int32_t v = (int32_t)x[i] - in->zero_point;
        const int32_t scaled = v >= 0
                                   ? hwb_multiply_by_quantized_multiplier(v, p->identity_multiplier, p->identity_shift)
                                   : hwb_multiply_by_quantized_multiplier(v, p->alpha_multiplier, p->alpha_shift);
        int64_t r = (int64_t)out->zero_point + scaled; /* int64: scaled may be near INT32_MAX */
        r = r < -128 ? -128 : (r > 127 ? 127 : r);
        y[i] = (int8_t)r;
    }
    return HWB_OK;
}
