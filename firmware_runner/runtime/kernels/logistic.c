/* LOGISTIC (sigmoid), int8: TFLite's reference kernel looks every input up in a 256-entry table
 * that its Prepare fills in float (1 / (1 + expf(-x)) for each input value, rounded to the output
 * quantization: scale 1/256, which TFLite requires, and zero point -128 from the converter). The
 * plan compiler computes that table on the host exactly as TFLite does
 * (firmware_runner/compiler/lowering/exponential.py) and stores it as a constant, so this kernel needs no
 * float maths and no parameters. TANH (tanh.c) is the same lookup in its own table.
 *
 * Operands: input (int8), table (int8[256], entry k for input value k - 128), output (int8, same
 * shape as the input). The output may share the input's buffer: each element is read before it
 * is written. */
#include "../hwb_ops.h"

hwb_status hwb_logistic_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 2, 1, 0)) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *table = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_same_s8(in, out)) return HWB_ERR_SHAPE;
    return hwb_is_s8(table) && table->rank == 1 && table->nbytes == 256 ? HWB_OK : HWB_ERR_PARAMS;
}

hwb_status hwb_logistic_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *table = &args->inputs[1], *out = &args->outputs[0];
    const int8_t *x = (const int8_t *)in->data, *lut = (const int8_t *)table->data;
    int8_t *y = (int8_t *)out->data;
    for (uint32_t i = 0; i < out->nbytes; i++) y[i] = lut[x[i] + 128];
    return HWB_OK;
}
