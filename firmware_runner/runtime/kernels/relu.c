/* RELU on int8, as TFLite's ReluEval runs it (QuantizedReluX -> ReluX): the input is requantized
 * to the output scale, then clamped to the quantized activation range:
 *
 *   out = clamp(out_zp + MultiplyByQuantizedMultiplier(in - in_zp, multiplier, shift), act_min, act_max)
 *
 * The plan compiler computes the multiplier (float input scale / output scale, as ReluPrepare
 * does) and the clamp (zero_point + roundf(0 / scale) .. 127), so this kernel serves RELU6 too
 * (relu6.c), which differs only in act_max. Zero points come from the tensors.
 * In place (output on top of the input) is fine: element i is read before it is written. */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by _requantize_and_clamp in firmware_runner/compiler/lowering/activations.py: same fields, same order. */
typedef struct {
    int32_t multiplier; /* input scale / output scale as Q31 ... */
    int32_t shift;      /* ... times 2^shift */
    int32_t act_min;    /* the clamp, in output quantized units, -128 <= act_min <= act_max <= 127 */
    int32_t act_max;
} relu_params;

hwb_status hwb_relu_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(relu_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_same_s8(in, out)) return HWB_ERR_SHAPE;
    const relu_params *p = (const relu_params *)args->params;
    if (!hwb_valid_shift(p->shift) || !hwb_valid_act_s8(p->act_min, p->act_max) ||
        !hwb_is_int8(in->zero_point) || !hwb_is_int8(out->zero_point))
        return HWB_ERR_PARAMS;

    return HWB_OK;
}

hwb_status hwb_relu_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const relu_params *p = (const relu_params *)args->params;

    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    const int32_t count = hwb_flat_size(in);
    for (int32_t i = 0; i < count; i++) {
        /* int64: a plan's multiplier may push the product to INT32_MAX before the zero point is added. */
        int64_t v = (int64_t)out->zero_point +
                    hwb_multiply_by_quantized_multiplier((int32_t)x[i] - in->zero_point, p->multiplier, p->shift);
        v = v < p->act_min ? p->act_min : v;
        v = v > p->act_max ? p->act_max : v;
        y[i] = (int8_t)v;
    }
    return HWB_OK;
}
