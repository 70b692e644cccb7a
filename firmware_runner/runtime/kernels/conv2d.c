/* CONV_2D, int8: TFLite's reference_integer_ops::ConvPerChannel (grouped convolution included,
 * dilation 1), bit for bit, on one of three paths the plan records (hwbench/kernel_paths.py):
 *
 * - reference: TFLite's loops. Operands: input [N, H, W, C] int8, filter [OC, FH, FW, C / groups]
 *   int8 (zero point 0), bias [OC] int32 or absent, multipliers [OC] int32, shifts [OC] int32
 *   (TFLite's per-channel requantization, computed by the plan compiler); output [N, OH, OW, OC] int8.
 * - im2col and pointwise (no groups): a matrix multiply, CMSIS-NN style, two output pixels by two
 *   channels at a time with 16-bit multiply-accumulates (SMLAD). Each pixel's receptive field, K = FH *
 *   FW * C values with padding read as the input zero point, is packed into the scratch buffer as int16
 *   pairs; pointwise (1 x 1 filter, so no padding) packs the input pixel itself, im2col first gathers the
 *   window. Operands: input; filter [OC, Kp] (Kp = K rounded up to 4, zero-filled) packed by channel
 *   pairs (pack_rows in firmware_runner/compiler/lowering/conv.py); per-channel records [OC, 3]
 *   (hwb_channel_quant) whose bias is folded: bias - input_zero_point * sum(filter row), so that the
 *   products need no input offset: sum(w * (x - zp)) = sum(w * x) - zp * sum(w) modulo 2^32, and a
 *   padded tap (x = zp) adds 0 as TFLite's skipped tap does; output.
 *
 * The parameters are the window alone (struct hwb_conv_window; path HWB_PATH_reference, _im2col or
 * _pointwise). Zero points come from the tensors. Accumulation wraps modulo 2^32 as TFLite's int32 arithmetic does
 * in practice. */
#include "conv.h"
#include "simd.h"


/* Bytes of scratch a fast path needs for K values per pixel: two packed pixels (int16, 4 Kp bytes)
 * and, for im2col, one gathered window (Kp bytes). hwbench/kernel_paths.py computes the same. */
static uint64_t scratch_needed(int32_t path, int32_t k) {
    uint64_t kp = (uint64_t)hwb_round_up4(k);
    return path == HWB_PATH_im2col ? 5 * kp : 4 * kp;
}

hwb_status hwb_conv2d_s8_check(const hwb_op_args *args) {
    const struct hwb_conv_window *p = (const struct hwb_conv_window *)args->params;
    const int fast = args->params_size == sizeof *p && args->params != 0 &&
                     (p->path == HWB_PATH_im2col || p->path == HWB_PATH_pointwise);
    if (args->params_size == sizeof *p && args->params != 0 && !fast && p->path != HWB_PATH_reference)
        return HWB_ERR_PARAMS;
    hwb_status status = fast ? hwb_fast_conv_operands_s8(args, sizeof(struct hwb_conv_window))
                              : hwb_conv_operands_s8(args, sizeof(struct hwb_conv_window));
    if (status != HWB_OK) return status;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    const int32_t in_c = in->dims[3], out_c = filter->dims[0];
    if (out->dims[0] != in->dims[0] || out->dims[3] != out_c) return HWB_ERR_SHAPE;
    if (fast) {
        if (p->filter_h < 1 || p->filter_w < 1 || (uint64_t)p->filter_h * (uint64_t)p->filter_w > (1u << 24) ||
            (uint64_t)p->filter_h * (uint64_t)p->filter_w * (uint64_t)in_c > (1u << 24) || /* < 2^55: exact */
            (p->path == HWB_PATH_pointwise && (p->filter_h != 1 || p->filter_w != 1)))
            return HWB_ERR_PARAMS;
        const int32_t k = p->filter_h * p->filter_w * in_c; /* <= 2^24 */
        if (!hwb_is_s8(filter) || filter->rank != 2 || filter->dims[1] != hwb_round_up4(k)) return HWB_ERR_SHAPE;
        if (args->scratch_size < scratch_needed(p->path, k) || ((uintptr_t)args->scratch & 3u) != 0)
            return HWB_ERR_PARAMS;
    } else {
        const int32_t f_c = filter->dims[3];
        if (in_c % f_c != 0 || out_c % (in_c / f_c) != 0) return HWB_ERR_SHAPE;
        if (p->filter_h != filter->dims[1] || p->filter_w != filter->dims[2]) return HWB_ERR_PARAMS;
    }
    return hwb_conv_window_check(args, p, fast, out_c);
}

static HWB_NOINLINE void reference(const hwb_op_args *args) {
    const struct hwb_conv_window *p = (const struct hwb_conv_window *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *bias = &args->inputs[2];
    const hwb_tensor *out = &args->outputs[0];
    const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2], in_c = in->dims[3];
    const int32_t out_c = filter->dims[0], f_h = filter->dims[1], f_w = filter->dims[2], f_c = filter->dims[3];
    const int32_t out_h = out->dims[1], out_w = out->dims[2];
    const int32_t per_group = out_c / (in_c / f_c);

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
                for (int32_t oc = 0, group = 0, next_group = per_group; oc < out_c; oc++) {
                    if (oc == next_group) {
                        group++;
                        next_group += per_group;
                    }
                    const int32_t c_first = group * f_c; /* the input channels of this output's group */
                    uint32_t acc = 0;
                    for (int32_t fy = fy_begin; fy < fy_end; fy++) {
                        for (int32_t fx = fx_begin; fx < fx_end; fx++) {
                            const int8_t *x = input + (((b * in_h + y0 + fy) * in_w + x0 + fx) * in_c + c_first);
                            const int8_t *w = weights + ((oc * f_h + fy) * f_w + fx) * f_c;
                            for (int32_t c = 0; c < f_c; c++) acc += (uint32_t)(w[c] * (x[c] + in_offset));
                        }
                    }
                    if (biases != 0) acc += (uint32_t)biases[oc];
                    output[((b * out_h + oy) * out_w + ox) * out_c + oc] =
                        hwb_conv_requantize(acc, mult[oc], shift[oc], out_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

/* Packs Kp int8 values (whole 4-byte groups) as the `slot`-th (0 or 1) of the two pixels the matrix
 * multiply reads: per group of 4 values, 16 bytes holding pixel 0's then pixel 1's values 0 and 2,
 * then 1 and 3, as int16 pairs (the order SXTB16 unpacks the filter's bytes in). */
static void pack_pixel(const int8_t *values, int32_t kp, uint32_t *packed, int32_t slot) {
    uint32_t *dst = packed + 2 * slot;
    for (int32_t k = 0; k < kp; k += 4, dst += 4) {
        const uint32_t v = hwb_load_u32(values + k);
        dst[0] = hwb_sxtb16(v);
        dst[1] = hwb_sxtb16_ror8(v);
    }
}

/* The first `count` values then zeros up to Kp, packed: a pixel whose K is not a multiple of 4 must
 * not be read past its end. */
static void pack_pixel_tail(const int8_t *values, int32_t count, int32_t kp, uint32_t *packed, int32_t slot) {
    const int32_t whole = count & ~3;
    pack_pixel(values, whole, packed, slot);
    if (whole == kp) return;
    int8_t last[4] = {0, 0, 0, 0};
    for (int32_t k = whole; k < count; k++) last[k - whole] = values[k];
    pack_pixel(last, 4, packed + 4 * (whole / 4), slot);
}

/* The sums of a pair of channels (their packed rows, interleaved 4 bytes at a time) with both
 * packed pixels over `groups` >= 1 groups of 4 values: sums0[channel] for pixel 0, sums1[channel] for
 * pixel 1. x and w are 4-byte aligned (the scratch buffer and the plan's constants are). */
static void dot_pair(const uint32_t *x, const uint32_t *w, int32_t groups, int32_t sums0[2], int32_t sums1[2]) {
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0; /* channel, pixel */
#if defined(__ARM_FEATURE_DSP)
    /* 17 instructions for 16 multiply-accumulates; C leaves the loads without writeback. */
    const uint32_t *end = w + 2 * groups;
    uint32_t x0, x1, x2, x3, w0, w1, t;
    __asm__ volatile(
        "1:\n\t"
        "ldrd %[x0], %[x1], [%[x]], #8\n\t"
        "ldrd %[x2], %[x3], [%[x]], #8\n\t"
        "ldrd %[w0], %[w1], [%[w]], #8\n\t"
        "sxtb16 %[t], %[w0]\n\t"
        "smlad %[a00], %[t], %[x0], %[a00]\n\t"
        "smlad %[a01], %[t], %[x2], %[a01]\n\t"
        "sxtb16 %[w0], %[w0], ror #8\n\t"
        "smlad %[a00], %[w0], %[x1], %[a00]\n\t"
        "smlad %[a01], %[w0], %[x3], %[a01]\n\t"
        "sxtb16 %[t], %[w1]\n\t"
        "smlad %[a10], %[t], %[x0], %[a10]\n\t"
        "smlad %[a11], %[t], %[x2], %[a11]\n\t"
        "sxtb16 %[w1], %[w1], ror #8\n\t"
        "smlad %[a10], %[w1], %[x1], %[a10]\n\t"
        "smlad %[a11], %[w1], %[x3], %[a11]\n\t"
        "cmp %[w], %[end]\n\t"
        "bne 1b"
        : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [x] "+r"(x), [w] "+r"(w),
          [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3), [w0] "=&r"(w0), [w1] "=&r"(w1),
          [t] "=&r"(t)
        : [end] "r"(end)
        : "cc", "memory");
#else
    for (int32_t g = 0; g < groups; g++, w += 2, x += 4) {
        const uint32_t w0_even = hwb_sxtb16(w[0]), w0_odd = hwb_sxtb16_ror8(w[0]);
        const uint32_t w1_even = hwb_sxtb16(w[1]), w1_odd = hwb_sxtb16_ror8(w[1]);
        a00 = hwb_smlad(w0_odd, x[1], hwb_smlad(w0_even, x[0], a00));
        a01 = hwb_smlad(w0_odd, x[3], hwb_smlad(w0_even, x[2], a01));
        a10 = hwb_smlad(w1_odd, x[1], hwb_smlad(w1_even, x[0], a10));
        a11 = hwb_smlad(w1_odd, x[3], hwb_smlad(w1_even, x[2], a11));
    }
#endif
    sums0[0] = a00;
    sums1[0] = a01;
    sums0[1] = a10;
    sums1[1] = a11;
}

/* The sums of one channel (its packed row) with both packed pixels: *sum0, *sum1. */
static void dot_single(const uint32_t *x, const uint32_t *w, int32_t groups, int32_t *sum0, int32_t *sum1) {
    int32_t a0 = 0, a1 = 0;
    for (int32_t g = 0; g < groups; g++, w++, x += 4) {
        const uint32_t w_even = hwb_sxtb16(w[0]), w_odd = hwb_sxtb16_ror8(w[0]);
        a0 = hwb_smlad(w_odd, x[1], hwb_smlad(w_even, x[0], a0));
        a1 = hwb_smlad(w_odd, x[3], hwb_smlad(w_even, x[2], a1));
    }
    *sum0 = a0;
    *sum1 = a1;
}

enum { CHUNK = 16 }; /* channels whose sums are kept between the multiply and the requantization */

/* Both packed pixels times every channel: out0[c] and out1[c]. The sums of a chunk of channels are
 * requantized apart from the multiply, so that neither loop runs short of registers. */
static void multiply(const hwb_op_args *args, const uint32_t *packed, int32_t kp, int8_t *out0, int8_t *out1) {
    const struct hwb_conv_window *p = (const struct hwb_conv_window *)args->params;
    const int32_t channels = args->inputs[1].dims[0], groups = kp / 4;
    const uint32_t *weights = (const uint32_t *)args->inputs[1].data;
    const hwb_channel_quant *q = (const hwb_channel_quant *)args->inputs[2].data;
    const hwb_output_quant o = {args->outputs[0].zero_point, p->act_min, p->act_max};
    int32_t sums0[CHUNK], sums1[CHUNK]; /* pixel 0's, pixel 1's */
    for (int32_t first = 0; first < channels; first += CHUNK) {
        const int32_t count = channels - first < CHUNK ? channels - first : CHUNK;
        int32_t k = 0;
        for (; k + 1 < count; k += 2, weights += 2 * groups) dot_pair(packed, weights, groups, &sums0[k], &sums1[k]);
        if (k < count) { /* the last of an odd number of channels: its row alone */
            dot_single(packed, weights, groups, &sums0[k], &sums1[k]);
            weights += groups;
        }
        hwb_fast_requantize_channels(sums0, q + first, count, &o, out0 + first);
        hwb_fast_requantize_channels(sums1, q + first, count, &o, out1 + first);
    }
}

/* The window of output pixel (b, oy, ox), K values in (fy, fx, c) order with padding read as the input
 * zero point, into `window` (Kp bytes, zeros past K). */
static void gather(const hwb_op_args *args, int32_t b, int32_t oy, int32_t ox, int8_t *window) {
    const struct hwb_conv_window *p = (const struct hwb_conv_window *)args->params;
    const hwb_tensor *in = &args->inputs[0];
    const int32_t in_h = in->dims[1], in_w = in->dims[2], in_c = in->dims[3];
    const int8_t *input = (const int8_t *)in->data;
    const int8_t zero_point = (int8_t)in->zero_point;
    const int32_t y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
    const int32_t row = p->filter_w * in_c;
    const int32_t fx_begin = x0 < 0 ? -x0 : 0, fx_end = in_w - x0 < p->filter_w ? in_w - x0 : p->filter_w;
    for (int32_t fy = 0; fy < p->filter_h; fy++, window += row) {
        const int32_t y = y0 + fy;
        if (y < 0 || y >= in_h) {
            memset(window, zero_point, (size_t)row);
            continue;
        }
        memset(window, zero_point, (size_t)(fx_begin * in_c));
        memcpy(window + fx_begin * in_c, input + ((b * in_h + y) * in_w + x0 + fx_begin) * in_c,
               (size_t)((fx_end - fx_begin) * in_c));
        memset(window + fx_end * in_c, zero_point, (size_t)((p->filter_w - fx_end) * in_c));
    }
    for (int32_t k = (int32_t)(row * p->filter_h); k % 4 != 0; k++) *window++ = 0;
}

static void fast(const hwb_op_args *args, int pointwise) {
    const struct hwb_conv_window *p = (const struct hwb_conv_window *)args->params;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2], in_c = in->dims[3];
    const int32_t out_h = out->dims[1], out_w = out->dims[2], out_c = out->dims[3];
    const int32_t k = p->filter_h * p->filter_w * in_c, kp = hwb_round_up4(k);
    const int8_t *input = (const int8_t *)in->data;
    uint32_t *packed = (uint32_t *)args->scratch;
    int8_t *window = (int8_t *)args->scratch + 4 * kp; /* im2col only */
    int8_t *output = (int8_t *)out->data, *pending = 0; /* the output of a pixel packed, waiting for a partner */
    for (int32_t b = 0; b < batches; b++)
        for (int32_t oy = 0; oy < out_h; oy++)
            for (int32_t ox = 0; ox < out_w; ox++, output += out_c) {
                const int32_t slot = pending != 0;
                if (pointwise) {
                    const int8_t *pixel = input + ((b * in_h + oy * p->stride_h) * in_w + ox * p->stride_w) * in_c;
                    pack_pixel_tail(pixel, in_c, kp, packed, slot);
                } else {
                    gather(args, b, oy, ox, window);
                    pack_pixel(window, kp, packed, slot);
                }
                if (slot == 0) {
                    pending = output;
                } else {
                    multiply(args, packed, kp, pending, output);
                    pending = 0;
                }
            }
    if (pending != 0) { /* an odd pixel out: its own partner, both writing the same outputs */
        for (int32_t g = 0; g < kp / 4; g++) {
            packed[4 * g + 2] = packed[4 * g];
            packed[4 * g + 3] = packed[4 * g + 1];
        }
        multiply(args, packed, kp, pending, pending);
    }
}

hwb_status hwb_conv2d_s8(const hwb_op_args *args) {
    const int32_t path = ((const struct hwb_conv_window *)args->params)->path;
    if (path == HWB_PATH_reference)
        reference(args);
    else
        fast(args, path == HWB_PATH_pointwise);
    return HWB_OK;
}
