/* What CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (conv2d.c, depthwise_conv2d.c,
 * fully_connected.c) share: operand checks and TFLite's per-channel requantization (the
 * multipliers and shifts the plan compiler computes, firmware_runner/compiler/lowering/conv.py). */
#ifndef HWB_CONV_H
#define HWB_CONV_H

#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* n rounded up to a multiple of 4 (n < 2^31 - 3): the row length of a packed filter. */
static inline int32_t hwb_round_up4(int32_t n) { return (n + 3) & ~3; }

/* The reference paths' CONV_2D and DEPTHWISE_CONV_2D operands: input, filter, bias (or absent),
 * multipliers, shifts; output. Input, filter and output are int8 of rank 4; a parameter struct of
 * params_size bytes. */
static inline hwb_status hwb_conv_operands_s8(const hwb_op_args *args, uint32_t params_size) {
    if (!hwb_args_match(args, 5, 1, params_size)) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_is_s8(in) || !hwb_is_s8(filter) || !hwb_is_s8(out)) return HWB_ERR_SHAPE;
    if (in->rank != 4 || filter->rank != 4 || out->rank != 4) return HWB_ERR_SHAPE;
    return HWB_OK;
}

/* The fast paths' operands: input (int8, rank 4), packed filter (4-byte aligned, for word loads),
 * per-channel records (hwb_channel_quant_check); output (int8, rank 4). */
static inline hwb_status hwb_fast_conv_operands_s8(const hwb_op_args *args, uint32_t params_size) {
    if (!hwb_args_match(args, 3, 1, params_size)) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_is_s8(in) || !hwb_is_s8(out) || in->rank != 4 || out->rank != 4 || filter->data == 0)
        return HWB_ERR_SHAPE;
    return ((uintptr_t)filter->data & 3u) == 0 ? HWB_OK : HWB_ERR_PARAMS;
}

/* The window and output of CONV_2D and DEPTHWISE_CONV_2D: the first fields of both parameter
 * structs, packed by firmware_runner/compiler/lowering/conv.py (conv_window), field for field. */
struct hwb_conv_window {
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left; /* ComputePaddingHeightWidth's, >= 0 */
    int32_t filter_h, filter_w;
    int32_t act_min, act_max; /* the fused activation's clamp */
    int32_t path;             /* the kernel path (HWB_PATHS) */
};

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

/* A fast path's requantization of one output channel (an int32 [channels, 3] operand): the bias with
 * the input zero point folded in, TFLite's multiplier and shift. */
typedef struct {
    int32_t bias, multiplier, shift;
} hwb_channel_quant;

/* `records` holds one hwb_channel_quant for each of `channels` channels, multipliers >= 0. */
static inline hwb_status hwb_channel_quant_check(const hwb_tensor *records, int32_t channels) {
    if (records->data == 0 || records->dtype != HWB_INT32 || records->rank != 2 || records->dims[0] != channels ||
        records->dims[1] != 3)
        return HWB_ERR_SHAPE;
    const hwb_channel_quant *q = (const hwb_channel_quant *)records->data;
    for (int32_t c = 0; c < channels; c++)
        if (q[c].multiplier < 0 || !hwb_valid_shift(q[c].shift)) return HWB_ERR_PARAMS;
    return HWB_OK;
}

/* The checks both convolutions end with, once their operands' kinds and the filter size are checked:
 * the window geometry, the quantization, and the per-channel constants of `channels` channels (the
 * fast paths' records or the reference's bias, multipliers and shifts). */
static inline hwb_status hwb_conv_window_check(const hwb_op_args *args, const struct hwb_conv_window *w, int fast,
                                               int32_t channels) {
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_conv_window_ok(in->dims[1], w->filter_h, out->dims[1], w->stride_h, w->pad_top) ||
        !hwb_conv_window_ok(in->dims[2], w->filter_w, out->dims[2], w->stride_w, w->pad_left) ||
        !hwb_conv_quant_ok(in, filter, out, w->act_min, w->act_max))
        return HWB_ERR_PARAMS;
    return fast ? hwb_channel_quant_check(&args->inputs[2], channels) : hwb_per_channel_check(args, channels);
}

/* One output of ConvPerChannel or DepthwiseConvPerChannel from its accumulator (bias included,
 * wrapped to int32), before the clamp: times the channel's multiplier (checked >= 0), plus the output
 * zero point. */
static inline int32_t hwb_conv_rescale(uint32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset) {
    const int32_t v = hwb_requantize(hwb_wrap_i32(acc), multiplier, shift);
    return hwb_wrap_i32((uint32_t)v + (uint32_t)out_offset);
}

/* hwb_conv_rescale clamped to the fused activation's range. */
static inline int8_t hwb_conv_requantize(uint32_t acc, int32_t multiplier, int32_t shift, int32_t out_offset,
                                         int32_t act_min, int32_t act_max) {
    return (int8_t)hwb_clamp_i32(hwb_conv_rescale(acc, multiplier, shift, out_offset), act_min, act_max);
}

/* The output side of a fast path's requantization, copied into locals so that int8 stores (which may
 * alias anything) do not force them to be read again. */
typedef struct {
    int32_t offset, min, max;
} hwb_output_quant;

/* `count` >= 1 outputs of consecutive channels from their sums of products (bias not included) and
 * their records: out[k] (requantize.c; out of line, so that its loop has the registers to itself). */
void hwb_fast_requantize_channels(const int32_t *sums, const hwb_channel_quant *q, int32_t count,
                                  const hwb_output_quant *o, int8_t *out);

#endif
