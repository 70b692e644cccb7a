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

/* Packed by _requantize_and_clamp in firmware_runner/lowering/activations.py: same fields, same order. */
typedef struct {
    int32_t multiplier; /* input scale / output scale as Q31 ... */
    int32_t shift;      /* ... times 2^shift */
    int32_t act_min;    /* the clamp, in output quantized units, -128 <= act_min <= act_max <= 127 */
    int32_t act_max;
} relu_params;

static int int8_zero_point(int32_t zp) { return zp >= -128 && zp <= 127; }

hwb_status hwb_relu_s8(const hwb_op_args *args) {
    if (args->input_count != 1 || args->output_count != 1 || args->params_size != sizeof(relu_params))
        return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (in->data == 0 || out->data == 0 || in->dtype != HWB_INT8 || out->dtype != HWB_INT8 ||
        hwb_flat_size(in) != hwb_flat_size(out) || in->nbytes != out->nbytes)
        return HWB_ERR_SHAPE;
    const relu_params *p = (const relu_params *)args->params;
    if (!hwb_valid_shift(p->shift) || p->act_min < -128 || p->act_min > p->act_max || p->act_max > 127 ||
        !int8_zero_point(in->zero_point) || !int8_zero_point(out->zero_point))
        return HWB_ERR_PARAMS;

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
