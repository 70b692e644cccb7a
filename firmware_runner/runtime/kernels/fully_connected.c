/* FULLY_CONNECTED, int8: TFLite's reference_integer_ops::FullyConnected / FullyConnectedPerChannel
 * as LiteRT's reference op resolver runs them, bit for bit.
 *
 * Operands: input of any rank, read as [batches, depth] int8; weights [units, depth] int8 (zero
 * point 0); bias [units] int32 or absent; scales [units, 3] int32, one hwb_double_scale per unit;
 * output of any rank with `units` innermost, [batches * units] elements, int8.
 *
 * The reference kernel requantizes in double precision:
 *   out = clamp(zp_out + (int32_t)round(double(acc) * (double(s_in) * double(s_w) / double(s_out))))
 * (not with a fixed-point multiplier: that differs by 1 LSB on some inputs). The plan compiler
 * computes each unit's double scale from the float32 values TFLite holds, exactly as the reference
 * does, and hwb_round_scaled reproduces the product and its rounding in integers. Accumulation wraps
 * modulo 2^32 as TFLite's int32 arithmetic does in practice. */
#include "conv.h"

/* Packed by lower_fully_connected in firmware_runner/compiler/lowering/conv.py, field for field. */
struct fully_connected_params {
    int32_t act_min, act_max; /* the fused activation's clamp */
};

hwb_status hwb_fully_connected_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 4, 1, sizeof(struct fully_connected_params))) return HWB_ERR_PARAMS;
    const struct fully_connected_params *p = (const struct fully_connected_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *bias = &args->inputs[2];
    const hwb_tensor *scales = &args->inputs[3], *out = &args->outputs[0];
    if (!hwb_is_s8(in) || !hwb_is_s8(filter) || !hwb_is_s8(out) || scales->data == 0 || scales->dtype != HWB_INT32)
        return HWB_ERR_SHAPE;
    if (filter->rank != 2 || in->rank < 1 || out->rank < 1) return HWB_ERR_SHAPE;
    const int32_t units = filter->dims[0], depth = filter->dims[1];
    const int32_t out_size = hwb_flat_size(out);
    if (out->dims[out->rank - 1] != units || out_size % units != 0) return HWB_ERR_SHAPE;
    const int32_t batches = out_size / units;
    if ((int64_t)batches * depth != (int64_t)hwb_flat_size(in) || scales->rank != 2 || scales->dims[0] != units ||
        scales->dims[1] != 3)
        return HWB_ERR_SHAPE;
    if (!hwb_bias_ok(bias, units)) return HWB_ERR_SHAPE;
    if (!hwb_conv_quant_ok(in, filter, out, p->act_min, p->act_max)) return HWB_ERR_PARAMS;
    const hwb_double_scale *unit_scales = (const hwb_double_scale *)scales->data;
    for (int32_t u = 0; u < units; u++)
        if (!hwb_valid_double_scale(&unit_scales[u])) return HWB_ERR_PARAMS;
    return HWB_OK;
}

hwb_status hwb_fully_connected_s8(const hwb_op_args *args) {
    const struct fully_connected_params *p = (const struct fully_connected_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *bias = &args->inputs[2];
    const hwb_tensor *out = &args->outputs[0];
    const hwb_double_scale *unit_scales = (const hwb_double_scale *)args->inputs[3].data;
    const int32_t units = filter->dims[0], depth = filter->dims[1], batches = hwb_flat_size(out) / units;
    const int8_t *input = (const int8_t *)in->data, *weights = (const int8_t *)filter->data;
    const int32_t *biases = (const int32_t *)bias->data;
    int8_t *output = (int8_t *)out->data;
    const int32_t in_offset = -in->zero_point, out_offset = out->zero_point;

    for (int32_t u = 0; u < units; u++) {
        const int8_t *w = weights + u * depth;
        for (int32_t b = 0; b < batches; b++) {
            const int8_t *x = input + b * depth;
            uint32_t acc = 0;
            for (int32_t d = 0; d < depth; d++) acc += (uint32_t)(w[d] * (x[d] + in_offset));
            if (biases != 0) acc += (uint32_t)biases[u];
            int32_t v = hwb_round_scaled(hwb_wrap_i32(acc), &unit_scales[u]);
            v = hwb_wrap_i32((uint32_t)v + (uint32_t)out_offset);
            output[b * units + u] = (int8_t)hwb_clamp_i32(v, p->act_min, p->act_max);
        }
    }
    return HWB_OK;
}
