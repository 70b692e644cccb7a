/* DEPTHWISE_CONV_2D, int8: TFLite's reference_integer_ops::DepthwiseConvPerChannel (any depth
 * multiplier, dilation 1), bit for bit.
 *
 * Operands: input [N, H, W, C] int8, filter [1, FH, FW, C * M] int8 (zero point 0), bias [C * M]
 * int32 or absent, multipliers [C * M] int32, shifts [C * M] int32 (TFLite's per-channel
 * requantization, computed by the plan compiler); output [N, OH, OW, C * M] int8. Output channel
 * c * M + m reads input channel c. Accumulation wraps modulo 2^32 as TFLite's int32 arithmetic
 * does in practice. */
#include "conv.h"

/* Packed by lower_depthwise_conv2d in firmware_runner/compiler/lowering/conv.py, field for field. */
struct depthwise_conv2d_params {
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left; /* ComputePaddingHeightWidth's, >= 0 */
    int32_t depth_multiplier;  /* output channels per input channel */
    int32_t act_min, act_max;  /* the fused activation's clamp */
};

hwb_status hwb_depthwise_conv2d_s8_check(const hwb_op_args *args) {
    hwb_status status = hwb_conv_operands_s8(args, sizeof(struct depthwise_conv2d_params));
    if (status != HWB_OK) return status;
    const struct depthwise_conv2d_params *p = (const struct depthwise_conv2d_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    const int32_t out_c = filter->dims[3];
    if (p->depth_multiplier < 1) return HWB_ERR_PARAMS;
    if (filter->dims[0] != 1 || out->dims[0] != in->dims[0] || out->dims[3] != out_c ||
        (int64_t)in->dims[3] * p->depth_multiplier != (int64_t)out_c)
        return HWB_ERR_SHAPE;
    if (!hwb_conv_window_ok(in->dims[1], filter->dims[1], out->dims[1], p->stride_h, p->pad_top) ||
        !hwb_conv_window_ok(in->dims[2], filter->dims[2], out->dims[2], p->stride_w, p->pad_left) ||
        !hwb_conv_quant_ok(in, filter, out, p->act_min, p->act_max))
        return HWB_ERR_PARAMS;
    return hwb_per_channel_check(args, out_c);
}

hwb_status hwb_depthwise_conv2d_s8(const hwb_op_args *args) {
    const struct depthwise_conv2d_params *p = (const struct depthwise_conv2d_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *bias = &args->inputs[2];
    const hwb_tensor *out = &args->outputs[0];
    const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2], in_c = in->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2], out_c = filter->dims[3];
    const int32_t out_h = out->dims[1], out_w = out->dims[2], mult_c = p->depth_multiplier;

    const int8_t *input = (const int8_t *)in->data, *weights = (const int8_t *)filter->data;
    const int32_t *biases = (const int32_t *)bias->data;
    const int32_t *mult = (const int32_t *)args->inputs[3].data, *shift = (const int32_t *)args->inputs[4].data;
    int8_t *output = (int8_t *)out->data;
    const int32_t in_offset = -in->zero_point, out_offset = out->zero_point;

    for (int32_t b = 0; b < batches; b++) {
        for (int32_t oy = 0; oy < out_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy_begin = y0 < 0 ? -y0 : 0, fy_end = in_h - y0 < f_h ? in_h - y0 : f_h;
            for (int32_t ox = 0; ox < out_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx_begin = x0 < 0 ? -x0 : 0, fx_end = in_w - x0 < f_w ? in_w - x0 : f_w;
                int8_t *o = output + ((b * out_h + oy) * out_w + ox) * out_c;
                for (int32_t oc = 0, ic = 0, next_ic = mult_c; oc < out_c; oc++) {
                    if (oc == next_ic) { /* output channel oc reads input channel oc / M */
                        ic++;
                        next_ic += mult_c;
                    }
                    uint32_t acc = 0;
                    for (int32_t fy = fy_begin; fy < fy_end; fy++) {
                        const int8_t *x = input + ((b * in_h + y0 + fy) * in_w + x0 + fx_begin) * in_c + ic;
                        const int8_t *w = weights + (fy * f_w + fx_begin) * out_c + oc;
                        for (int32_t k = 0; k < fx_end - fx_begin; k++)
                            acc += (uint32_t)(w[k * out_c] * (x[k * in_c] + in_offset));
                    }
                    if (biases != 0) acc += (uint32_t)biases[oc];
                    o[oc] = hwb_conv_requantize(acc, mult[oc], shift[oc], out_offset, p->act_min, p->act_max);
                }
            }
        }
    }
    return HWB_OK;
}
