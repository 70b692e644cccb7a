/* What AVERAGE_POOL_2D and MAX_POOL_2D (average_pool.c, max_pool.c) share: their parameters, the
 * window geometry TFLite's reference int8 pooling (reference/integer_ops/pooling.h) uses, the checks
 * and the loop over output pixels and channels; each kernel supplies the reduction of one window. */
#ifndef HWB_POOLING_H
#define HWB_POOLING_H

#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_pool in firmware_runner/compiler/lowering/pooling.py, in this order. */
struct pool_params {
    int32_t stride_h;
    int32_t stride_w;
    int32_t filter_h;
    int32_t filter_w;
    int32_t padding; /* 0 VALID, 1 SAME */
    int32_t activation_min;
    int32_t activation_max;
};

/* `out` is the output size `padding` gives along one axis (64-bit: a plan's strides and filters may
 * be anything). */
static inline int hwb_pool_size_ok(int32_t in, int32_t out, int32_t stride, int32_t filter, int32_t padding) {
    int64_t expected = padding == 1 ? ((int64_t)in + stride - 1) / stride : ((int64_t)in + stride - filter) / stride;
    return expected == out;
}

/* The padding before the first element along one axis, as TFLite's ComputePaddingHeightWidth
 * computes it; below `filter` when the output size is right. */
static inline int32_t hwb_pool_pad(int32_t in, int32_t out, int32_t stride, int32_t filter) {
    int64_t total = ((int64_t)out - 1) * stride + filter - in;
    return (int32_t)(total > 0 ? total / 2 : 0);
}

/* The window rows (or columns) [*start, *end) that lie inside the input, for output position o. */
static inline void hwb_pool_window(int32_t o, int32_t stride, int32_t pad, int32_t filter, int32_t in, int32_t *start,
                                   int32_t *end) {
    int64_t origin = (int64_t)o * stride - pad;
    int64_t s = origin < 0 ? -origin : 0;
    int64_t e = (int64_t)in - origin < filter ? (int64_t)in - origin : filter;
    *start = (int32_t)s;
    *end = (int32_t)(e > s ? e : s);
}

/* Operands: input, output (both rank 4, int8, the same batches and channels), and the output size
 * the padding gives. */
static inline hwb_status hwb_pool_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(struct pool_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const struct pool_params *p = (const struct pool_params *)args->params;
    if (p->stride_h < 1 || p->stride_w < 1 || p->filter_h < 1 || p->filter_w < 1 || (p->padding != 0 && p->padding != 1) ||
        !hwb_valid_act_s8(p->activation_min, p->activation_max))
        return HWB_ERR_PARAMS;
    if (!hwb_is_s8(in) || !hwb_is_s8(out) || in->rank != 4 || out->rank != 4 || in->dims[0] != out->dims[0] ||
        in->dims[3] != out->dims[3])
        return HWB_ERR_SHAPE;
    if (!hwb_pool_size_ok(in->dims[1], out->dims[1], p->stride_h, p->filter_h, p->padding) ||
        !hwb_pool_size_ok(in->dims[2], out->dims[2], p->stride_w, p->filter_w, p->padding))
        return HWB_ERR_SHAPE;
    return HWB_OK;
}

/* A window's value before the activation clamp, from its `rows` x `cols` inputs inside the input
 * (all of one channel): window[r * row_stride + k * step]. */
typedef int32_t (*hwb_pool_reduce)(const int8_t *window, int32_t rows, int32_t cols, int32_t row_stride, int32_t step);

/* Writes every output once the operands are checked (hwb_pool_check). */
static HWB_ALWAYS_INLINE hwb_status hwb_pool_s8(const hwb_op_args *args, hwb_pool_reduce reduce) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const struct pool_params *p = (const struct pool_params *)args->params;
    const int32_t pad_h = hwb_pool_pad(in->dims[1], out->dims[1], p->stride_h, p->filter_h);
    const int32_t pad_w = hwb_pool_pad(in->dims[2], out->dims[2], p->stride_w, p->filter_w);
    const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2], depth = in->dims[3];
    const int32_t out_h = out->dims[1], out_w = out->dims[2];
    /* With the geometry checked, every index below is in [0, flat size): int32 arithmetic. */
    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    for (int32_t b = 0; b < batches; b++)
        for (int32_t oy = 0; oy < out_h; oy++) {
            int32_t y0, y1;
            hwb_pool_window(oy, p->stride_h, pad_h, p->filter_h, in_h, &y0, &y1);
            int32_t iy = oy * p->stride_h - pad_h + y0; /* the first input row inside the window */
            for (int32_t ox = 0; ox < out_w; ox++) {
                int32_t x0, x1;
                hwb_pool_window(ox, p->stride_w, pad_w, p->filter_w, in_w, &x0, &x1);
                int32_t ix = ox * p->stride_w - pad_w + x0;
                int32_t rows = y1 - y0, cols = x1 - x0; /* >= 1: the check has seen every window overlap the input */
                const int8_t *corner = x + ((b * in_h + iy) * in_w + ix) * depth;
                int8_t *dst = y + ((b * out_h + oy) * out_w + ox) * depth;
                for (int32_t c = 0; c < depth; c++)
                    dst[c] = (int8_t)hwb_clamp_i32(reduce(corner + c, rows, cols, in_w * depth, depth), p->activation_min,
                                                   p->activation_max);
            }
        }
    return HWB_OK;
}

#endif
