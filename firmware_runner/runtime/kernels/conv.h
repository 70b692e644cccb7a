/* What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (conv2d.c, depthwise_conv2d.c,
 * fully_connected.c) share: operand checks and TFLite's per-channel requantization (the
 * multipliers and shifts the plan compiler computes, firmware_runner/compiler/lowering/conv.py). */
#ifndef HWB_CONV_H
#define HWB_CONV_H

#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* n rounded up to a multiple of 4 (n < 2^31 - 3): the row length of a packed filter. */
static inline int32_t hwb_round_up4(int32_t n) { return (n + 3) & ~3; }

/* CONV_2D and DEPTHWISE_CONV_2D operands: input, filter, bias (or absent), multipliers, shifts;
 * output. Input and output are int8 of rank 4, the filter int8 of rank filter_rank; a parameter
 * struct of params_size bytes. */
static inline hwb_status hwb_conv_operands_s8(const hwb_op_args *args, uint32_t params_size, int32_t filter_rank) {
    if (!hwb_args_match(args, 5, 1, params_size)) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_is_s8(in) || !hwb_is_s8(filter) || !hwb_is_s8(out)) return HWB_ERR_SHAPE;
    if (in->rank != 4 || filter->rank != filter_rank || out->rank != 4) return HWB_ERR_SHAPE;
    return HWB_OK;
}

/* Output positions along one axis fit the input: every window overlaps it and no index
 * arithmetic can overflow. */
static inline int hwb_conv_window_ok(int32_t in, int32_t filter, int32_t out, int32_t stride, int32_t pad) {
    if (stride < 1 || pad < 0 || pad >= filter) return 0;
    if ((int64_t)in + filter > INT32_MAX) return 0;
    return (int64_t)(out - 1) * stride - pad <= (int64_t)in - 1;
}

/* The quantization TFLite's int8 kernels accept: int8 zero points for input and output, 0 for the
 * (symmetric) filter, and an int8 activation clamp. */
static inline int hwb_conv_quant_ok(const hwb_tensor *in, const hwb_tensor *filter, const hwb_tensor *out,
                                    int32_t act_min, int32_t act_max) {
    return hwb_valid_act_s8(act_min, act_max) && hwb_is_int8(in->zero_point) && hwb_is_int8(out->zero_point) &&
           filter->zero_point == 0;
}

/* An absent bias, or int32 with one value per output channel. */
static inline int hwb_bias_ok(const hwb_tensor *bias, int32_t channels) {
    return bias->data == 0 || (bias->dtype == HWB_INT32 && hwb_flat_size(bias) == channels);
}

/* The bias, multipliers and shifts (inputs 2, 3, 4) of `channels` output channels. */
static inline hwb_status hwb_per_channel_check(const hwb_op_args *args, int32_t channels) {
    const hwb_tensor *bias = &args->inputs[2], *mult = &args->inputs[3], *shift = &args->inputs[4];
    if (mult->data == 0 || shift->data == 0 || mult->dtype != HWB_INT32 || shift->dtype != HWB_INT32 ||
        hwb_flat_size(mult) != channels || hwb_flat_size(shift) != channels)
        return HWB_ERR_SHAPE;
    if (!hwb_bias_ok(bias, channels)) return HWB_ERR_SHAPE;
    const int32_t *m = (const int32_t *)mult->data, *s = (const int32_t *)shift->data;
    for (int32_t c = 0; c < channels; c++)
        if (m[c] < 0 || !hwb_valid_shift(s[c])) return HWB_ERR_PARAMS;
    return HWB_OK;
}

/* One output of ConvPerChannel or DepthwiseConvPerChannel from its accumulator (bias included,
 * wrapped to int32): times the channel's multiplier (checked >= 0), plus the output zero point, clamped. */
static inline int8_t hwb_conv_requantize(uint32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset,
                                         int32_t act_min, int32_t act_max) {
    int32_t v = hwb_requantize(hwb_wrap_i32(acc), multiplier, shift);
    v = hwb_wrap_i32((uint32_t)v + (uint32_t)out_offset);
    return (int8_t)hwb_clamp_i32(v, act_min, act_max);
}

#endif
