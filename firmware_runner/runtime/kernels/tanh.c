/* TANH, int8: TFLite's reference kernel looks every input up in a 256-entry table that its
 * Prepare fills in float (tanhf(x) for each input value, rounded to the output quantization,
 * which the converter sets to scale 1/128, zero point 0). The plan compiler computes that table
 * on the host exactly as TFLite does (firmware_runner/lowering/exponential.py) and stores it as a
 * constant, so this kernel needs no float maths and no parameters.
 *
 * Operands: input (int8), table (int8[256], entry k for input value k - 128), output (int8, same
 * shape as the input). The output may share the input's buffer: each element is read before it
 * is written. */
#include "../hwb_ops.h"

hwb_status hwb_tanh_s8(const hwb_op_args *args) {
    if (args->input_count != 2 || args->output_count != 1 || args->params_size != 0) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *table = &args->inputs[1], *out = &args->outputs[0];
    if (in->data == 0 || out->data == 0 || in->dtype != HWB_INT8 || out->dtype != HWB_INT8 ||
        !hwb_same_shape(in, out) || in->nbytes != out->nbytes)
        return HWB_ERR_SHAPE;
    if (table->data == 0 || table->dtype != HWB_INT8 || table->rank != 1 || table->nbytes != 256)
        return HWB_ERR_PARAMS;
    const int8_t *x = (const int8_t *)in->data, *lut = (const int8_t *)table->data;
    int8_t *y = (int8_t *)out->data;
    for (uint32_t i = 0; i < out->nbytes; i++) y[i] = lut[x[i] + 128];
    return HWB_OK;
}
