/* DEQUANTIZE int8 to float32, as TFLite's reference_integer_ops::Dequantize:
 *
 *   out = (float)((double)scale * (in - zero_point))
 *
 * with the input tensor's scale and zero point. The double product is exact (24 + 9 bits), so one
 * float32 multiplication, which rounds the same exact product once, gives the same bits without
 * double arithmetic (software-emulated on Cortex-M4). No parameters. */
#include "../hwb_ops.h"

#define FLOAT32_MAX 3.40282347e38f

hwb_status hwb_dequantize_s8_check(const hwb_op_args *args) {
    if (args->input_count != 1 || args->output_count != 1 || args->params_size != 0) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (in->data == 0 || out->data == 0 || in->dtype != HWB_INT8 || out->dtype != HWB_FLOAT32 ||
        hwb_flat_size(in) != hwb_flat_size(out) || (uint64_t)out->nbytes != (uint64_t)in->nbytes * 4u)
        return HWB_ERR_SHAPE;
    const float scale = in->scale;
    if (!(scale > 0.0f && scale <= FLOAT32_MAX) || in->zero_point < -128 || in->zero_point > 127)
        return HWB_ERR_PARAMS;

    return HWB_OK;
}

hwb_status hwb_dequantize_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const float scale = in->scale;

    const int8_t *x = (const int8_t *)in->data;
    float *y = (float *)out->data;
    const int32_t count = hwb_flat_size(in);
    /* Backwards: should a plan put the output over the input, the 4-byte writes stay behind the reads. */
    for (int32_t i = count - 1; i >= 0; i--) y[i] = scale * (float)((int32_t)x[i] - in->zero_point);
    return HWB_OK;
}
