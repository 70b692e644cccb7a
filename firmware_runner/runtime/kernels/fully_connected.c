/* FULLY_CONNECTED, int8: TFLite's reference_integer_ops::FullyConnected / FullyConnectedPerChannel
 * as LiteRT's reference op resolver runs them, bit for bit.
 *
 * Operands: input of any rank, read as [batches, depth] int8; weights [units, depth] int8 (zero
 * point 0); bias [units] int32 or absent; weight scales [units] float32 (a per-tensor scale repeated);
 * output of any rank with `units` innermost, [batches * units] elements, int8.
 *
 * The reference kernel requantizes in double precision, rounding once:
 *   out = clamp(zp_out + (int32_t)round(double(acc) * (double(s_in) * double(s_w) / double(s_out))))
 * (not with a fixed-point multiplier: that differs by 1 LSB on some inputs). The scales are the
 * float32 values TFLite holds; s_in and s_out come from the tensors. Accumulation wraps modulo 2^32
 * as TFLite's int32 arithmetic does in practice; a requantized value outside int32 becomes INT32_MIN,
 * as the x86 conversion TFLite's build uses does. */
#include <float.h>

#include "conv.h"

/* Packed by lower_fully_connected in firmware_runner/compiler/lowering/conv.py, field for field. */
struct fully_connected_params {
    int32_t act_min, act_max; /* the fused activation's clamp */
};

static int positive_finite(float s) { return s > 0.0f && s <= FLT_MAX; }

/* static_cast<int32_t>(std::round(v)) as compiled for x86: halves away from zero; NaN and values
 * whose rounding leaves int32 give INT32_MIN. No libm: the fraction v - trunc(v) is exact. */
static int32_t round_to_i32(double v) {
    if (!(v > -2147483648.5 && v < 2147483647.5)) return INT32_MIN;
    int32_t t = (int32_t)v; /* truncates; in range by the test above */
    double fraction = v - (double)t;
    if (fraction >= 0.5) return t + 1;
    if (fraction <= -0.5) return t - 1;
    return t;
}

hwb_status hwb_fully_connected_s8(const hwb_op_args *args) {
    if (!hwb_args_match(args, 4, 1, sizeof(struct fully_connected_params))) return HWB_ERR_PARAMS;
    const struct fully_connected_params *p = (const struct fully_connected_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *bias = &args->inputs[2];
    const hwb_tensor *scales = &args->inputs[3], *out = &args->outputs[0];
    if (!hwb_is_s8(in) || !hwb_is_s8(filter) || !hwb_is_s8(out) || scales->data == 0 || scales->dtype != HWB_FLOAT32)
        return HWB_ERR_SHAPE;
    if (filter->rank != 2 || in->rank < 1 || out->rank < 1) return HWB_ERR_SHAPE;
    const int32_t units = filter->dims[0], depth = filter->dims[1];
    const int32_t out_size = hwb_flat_size(out);
    if (out->dims[out->rank - 1] != units || out_size % units != 0) return HWB_ERR_SHAPE;
    const int32_t batches = out_size / units;
    if ((int64_t)batches * depth != (int64_t)hwb_flat_size(in) || hwb_flat_size(scales) != units) return HWB_ERR_SHAPE;
    if (!hwb_bias_ok(bias, units)) return HWB_ERR_SHAPE;
    if (!hwb_conv_quant_ok(in, filter, out, p->act_min, p->act_max) || !positive_finite(in->scale) ||
        !positive_finite(out->scale))
        return HWB_ERR_PARAMS;
    const float *filter_scales = (const float *)scales->data;
    for (int32_t u = 0; u < units; u++)
        if (!(filter_scales[u] >= 0.0f && filter_scales[u] <= FLT_MAX)) return HWB_ERR_PARAMS;

    const int8_t *input = (const int8_t *)in->data, *weights = (const int8_t *)filter->data;
    const int32_t *biases = (const int32_t *)bias->data;
    int8_t *output = (int8_t *)out->data;
    const int32_t in_offset = -in->zero_point, out_offset = out->zero_point;
    const double in_scale = (double)in->scale, out_scale = (double)out->scale;

    for (int32_t u = 0; u < units; u++) {
        const double effective = in_scale * (double)filter_scales[u] / out_scale;
        const int8_t *w = weights + u * depth;
        for (int32_t b = 0; b < batches; b++) {
            const int8_t *x = input + b * depth;
            uint32_t acc = 0;
            for (int32_t d = 0; d < depth; d++) acc += (uint32_t)(w[d] * (x[d] + in_offset));
            if (biases != 0) acc += (uint32_t)biases[u];
            int32_t v = round_to_i32((double)hwb_wrap_i32(acc) * effective);
            v = hwb_wrap_i32((uint32_t)v + (uint32_t)out_offset);
            output[b * units + u] = (int8_t)hwb_clamp_i32(v, p->act_min, p->act_max);
        }
    }
    return HWB_OK;
}
