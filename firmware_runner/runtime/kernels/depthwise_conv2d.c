/* DEPTHWISE_CONV_2D, int8: TFLite's reference_integer_ops::DepthwiseConvPerChannel (any depth
 * multiplier, dilation 1), bit for bit, on one of three paths the plan records
 * (hwbench/kernel_paths.py):
 *
 * - reference: TFLite's loops. Operands: input [N, H, W, C] int8, filter [1, FH, FW, C * M] int8 (zero
 *   point 0), bias [C * M] int32 or absent, multipliers [C * M] int32, shifts [C * M] int32 (TFLite's
 *   per-channel requantization, computed by the plan compiler); output [N, OH, OW, C * M] int8. Output
 *   channel c * M + m reads input channel c.
 * - dw_3x3 and dw_general (depth multiplier 1): four channels at a time, one word of input per tap, its
 *   even and odd bytes widened (SXTB16) and multiplied into four accumulators (SMLABB, SMLATT); the 3 x 3
 *   filter unrolled. Operands: input; filter packed [ceil(C / 4), FH * FW, 2] int32 (for each group of
 *   four channels and each tap, the weights of channels 0 and 2, then 1 and 3, as int16 pairs; zeros
 *   past C); per-channel records [C, 3] (hwb_channel_quant) whose bias is folded, bias -
 *   input_zero_point * sum(filter), so that a tap outside the input reads the input zero point and adds
 *   nothing, as TFLite's skipped tap; output.
 *
 * Accumulation wraps modulo 2^32 as TFLite's int32 arithmetic does in practice. */
#include "conv.h"
#include "simd.h"

/* Packed by lower_depthwise_conv2d in firmware_runner/compiler/lowering/conv.py, field for field. */
struct depthwise_conv2d_params {
    struct hwb_conv_window window; /* path HWB_PATH_reference, _dw_3x3 or _dw_general */
    int32_t depth_multiplier;      /* output channels per input channel */
};

hwb_status hwb_depthwise_conv2d_s8_check(const hwb_op_args *args) {
    const struct depthwise_conv2d_params *p = (const struct depthwise_conv2d_params *)args->params;
    const int sized = args->params_size == sizeof *p && args->params != 0;
    const int fast = sized && (p->window.path == HWB_PATH_dw_3x3 || p->window.path == HWB_PATH_dw_general);
    if (sized && !fast && p->window.path != HWB_PATH_reference) return HWB_ERR_PARAMS;
    hwb_status status = fast ? hwb_fast_conv_operands_s8(args, sizeof *p) : hwb_conv_operands_s8(args, sizeof *p);
    if (status != HWB_OK) return status;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    const int32_t out_c = out->dims[3];
    if (p->depth_multiplier < 1 || p->window.filter_h < 1 || p->window.filter_w < 1 || (fast && p->depth_multiplier != 1) ||
        (p->window.path == HWB_PATH_dw_3x3 && (p->window.filter_h != 3 || p->window.filter_w != 3)))
        return HWB_ERR_PARAMS;
    if (out->dims[0] != in->dims[0] || (int64_t)in->dims[3] * p->depth_multiplier != (int64_t)out_c) return HWB_ERR_SHAPE;
    if (fast) {
        if ((uint64_t)p->window.filter_h * (uint64_t)p->window.filter_w > (1u << 24)) return HWB_ERR_PARAMS;
        if (filter->dtype != HWB_INT32 || filter->rank != 3 || filter->dims[0] != (out_c + 3) / 4 ||
            filter->dims[1] != p->window.filter_h * p->window.filter_w || filter->dims[2] != 2)
            return HWB_ERR_SHAPE;
    } else if (filter->dims[0] != 1 || filter->dims[1] != p->window.filter_h || filter->dims[2] != p->window.filter_w ||
               filter->dims[3] != out_c) {
        return HWB_ERR_SHAPE;
    }
    return hwb_conv_window_check(args, &p->window, fast, out_c);
}

static HWB_NOINLINE void reference(const hwb_op_args *args) {
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
            const int32_t y0 = oy * p->window.stride_h - p->window.pad_top;
            const int32_t fy_begin = y0 < 0 ? -y0 : 0, fy_end = in_h - y0 < f_h ? in_h - y0 : f_h;
            for (int32_t ox = 0; ox < out_w; ox++) {
                const int32_t x0 = ox * p->window.stride_w - p->window.pad_left;
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
                    o[oc] = hwb_conv_requantize(acc, mult[oc], shift[oc], out_offset, p->window.act_min, p->window.act_max);
                }
            }
        }
    }
}



/* Four channels' input values at one tap as a word: `count` (1..4) bytes from `x`, zeros after. */
static inline uint32_t load_channels(const int8_t *x, int32_t count) {
    if (count == 4) return hwb_load_u32(x);
    uint32_t v = 0;
    for (int32_t k = 0; k < count; k++) v |= (uint32_t)(uint8_t)x[k] << (8 * k);
    return v;
}

/* One tap of four channels: the input word times the tap's packed weights (channels 0 and 2, then
 * 1 and 3, as int16 pairs) into the four sums. */
static inline void tap(uint32_t x, const uint32_t *w, int32_t sums[4]) {
    const uint32_t even = hwb_sxtb16(x), odd = hwb_sxtb16_ror8(x);
    sums[0] = hwb_smlabb(even, w[0], sums[0]);
    sums[2] = hwb_smlatt(even, w[0], sums[2]);
    sums[1] = hwb_smlabb(odd, w[1], sums[1]);
    sums[3] = hwb_smlatt(odd, w[1], sums[3]);
}

/* The sums of four whole channels over a 3 x 3 window inside the input: x points at the window's
 * first tap, `channels` apart along a row, `row` apart between rows; w at the group's 18 words. */
static void group_3x3(const int8_t *x, int32_t channels, int32_t row, const uint32_t *w, int32_t sums[4]) {
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#if defined(__ARM_FEATURE_DSP)
    /* 8 instructions a tap (4 multiply-accumulates), 3 a row. */
    const int32_t channels2 = 2 * channels;
    uint32_t t, odd, w0, w1;
#define HWB_DW_TAP(address)                              \
    "ldr %[t], " address "\n\t"                          \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                  \
    "sxtb16 %[odd], %[t], ror #8\n\t"                    \
    "sxtb16 %[t], %[t]\n\t"                              \
    "smlabb %[s0], %[t], %[w0], %[s0]\n\t"               \
    "smlatt %[s2], %[t], %[w0], %[s2]\n\t"               \
    "smlabb %[s1], %[odd], %[w1], %[s1]\n\t"             \
    "smlatt %[s3], %[odd], %[w1], %[s3]\n\t"
#define HWB_DW_ROW                                       \
    HWB_DW_TAP("[%[x]]")                                 \
    HWB_DW_TAP("[%[x], %[c1]]")                          \
    HWB_DW_TAP("[%[x], %[c2]]")
    __asm__(HWB_DW_ROW "add %[x], %[x], %[row]\n\t" HWB_DW_ROW "add %[x], %[x], %[row]\n\t" HWB_DW_ROW
            : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), [x] "+r"(x), [w] "+r"(w), [t] "=&r"(t),
              [odd] "=&r"(odd), [w0] "=&r"(w0), [w1] "=&r"(w1)
            : [c1] "r"(channels), [c2] "r"(channels2), [row] "r"(row)
            : "memory");
#undef HWB_DW_ROW
#undef HWB_DW_TAP
#else
    int32_t s[4] = {0, 0, 0, 0};
    for (int32_t fy = 0; fy < 3; fy++, x += row, w += 6) {
        tap(hwb_load_u32(x), w, s);
        tap(hwb_load_u32(x + channels), w + 2, s);
        tap(hwb_load_u32(x + 2 * channels), w + 4, s);
    }
    s0 = s[0];
    s1 = s[1];
    s2 = s[2];
    s3 = s[3];
#endif
    sums[0] = s0;
    sums[1] = s1;
    sums[2] = s2;
    sums[3] = s3;
}

/* The sums of four whole channels over any window inside the input: x points at the window's first
 * tap, `channels` apart along a row, `row` apart between rows; w at the group's 2 * f_h * f_w words.
 * One loop over the taps (a filter one column wide, as 1-D convolutions have, makes rows of one tap). */
static HWB_NOINLINE void group_inside(const int8_t *x, int32_t channels, int32_t row, int32_t f_h, int32_t f_w,
                                      const uint32_t *w, int32_t sums[4]) {
    int32_t s[4] = {0, 0, 0, 0};
    const int32_t next_row = row - f_w * channels; /* from past a row's last tap to the next row's first */
    const uint32_t *end = w + 2 * f_h * f_w;
    for (int32_t fx = 0; w != end; w += 2) {
        tap(hwb_load_u32(x), w, s);
        x += channels;
        if (++fx == f_w) {
            fx = 0;
            x += next_row;
        }
    }
    sums[0] = s[0];
    sums[1] = s[1];
    sums[2] = s[2];
    sums[3] = s[3];
}

/* One output pixel's window: where it starts in the batch's image, and the filter rows and columns
 * [begin, end) that lie inside the image (the others read the zero point). */
typedef struct {
    const int8_t *image;
    int32_t in_w, channels, f_h, f_w;
    int32_t y0, x0, fy_begin, fy_end, fx_begin, fx_end;
    uint32_t padding; /* the input zero point, four copies */
} window;

/* The sums of `count` (1..4) channels from c over any window. */
static void group_any(const window *win, int32_t c, int32_t count, const uint32_t *w, int32_t sums[4]) {
    int32_t s[4] = {0, 0, 0, 0};
    for (int32_t fy = 0; fy < win->f_h; fy++) {
        int32_t fx = 0;
        if (fy >= win->fy_begin && fy < win->fy_end) {
            for (; fx < win->fx_begin; fx++, w += 2) tap(win->padding, w, s);
            const int8_t *x = win->image + ((win->y0 + fy) * win->in_w + win->x0 + fx) * win->channels + c;
            if (count == 4) {
                for (; fx < win->fx_end; fx++, w += 2, x += win->channels) tap(hwb_load_u32(x), w, s);
            } else {
                for (; fx < win->fx_end; fx++, w += 2, x += win->channels) tap(load_channels(x, count), w, s);
            }
        }
        for (; fx < win->f_w; fx++, w += 2) tap(win->padding, w, s);
    }
    sums[0] = s[0];
    sums[1] = s[1];
    sums[2] = s[2];
    sums[3] = s[3];
}

enum { CHUNK = 32 }; /* channels whose sums are kept between the multiply-accumulates and the requantization */

static void fast(const hwb_op_args *args) {
    const struct depthwise_conv2d_params *p = (const struct depthwise_conv2d_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2], channels = in->dims[3];
    const int32_t out_h = out->dims[1], out_w = out->dims[2], f_h = p->window.filter_h, f_w = p->window.filter_w;
    const int32_t taps = f_h * f_w, row = in_w * channels;
    const uint32_t *weights = (const uint32_t *)args->inputs[1].data;
    const hwb_channel_quant *q = (const hwb_channel_quant *)args->inputs[2].data;
    const hwb_output_quant o = {out->zero_point, p->window.act_min, p->window.act_max};
    const int is_3x3 = p->window.path == HWB_PATH_dw_3x3;
    window win = {0, in_w, channels, f_h, f_w, 0, 0, 0, 0, 0, 0, (uint32_t)(uint8_t)in->zero_point * 0x01010101u};
    int8_t *output = (int8_t *)out->data;
    int32_t sums[CHUNK];
    for (int32_t b = 0; b < batches; b++) {
        win.image = (const int8_t *)in->data + b * in_h * row;
        for (int32_t oy = 0; oy < out_h; oy++) {
            win.y0 = oy * p->window.stride_h - p->window.pad_top;
            win.fy_begin = win.y0 < 0 ? -win.y0 : 0;
            win.fy_end = in_h - win.y0 < f_h ? in_h - win.y0 : f_h;
            for (int32_t ox = 0; ox < out_w; ox++, output += channels) {
                win.x0 = ox * p->window.stride_w - p->window.pad_left;
                win.fx_begin = win.x0 < 0 ? -win.x0 : 0;
                win.fx_end = in_w - win.x0 < f_w ? in_w - win.x0 : f_w;
                const int inside = win.fy_begin == 0 && win.fy_end == f_h && win.fx_begin == 0 && win.fx_end == f_w;
                const int8_t *corner = inside ? win.image + (win.y0 * in_w + win.x0) * channels : win.image;
                const uint32_t *w = weights;
                for (int32_t first = 0; first < channels; first += CHUNK) { /* sums kept, then requantized */
                    const int32_t count = channels - first < CHUNK ? channels - first : CHUNK;
                    for (int32_t c = first; c < first + count; c += 4, w += 2 * taps) {
                        int32_t *group = &sums[c - first];
                        if (c + 4 > channels) /* the last, partial group */
                            group_any(&win, c, channels - c, w, group);
                        else if (inside && is_3x3)
                            group_3x3(corner + c, channels, row, w, group);
                        else if (inside)
                            group_inside(corner + c, channels, row, f_h, f_w, w, group);
                        else
                            group_any(&win, c, 4, w, group);
                    }
                    hwb_fast_requantize_channels(sums, &q[first], count, &o, output + first);
                }
            }
        }
    }
}

hwb_status hwb_depthwise_conv2d_s8(const hwb_op_args *args) {
    if (((const struct depthwise_conv2d_params *)args->params)->window.path == HWB_PATH_reference)
        reference(args);
    else
        fast(args);
    return HWB_OK;
}
