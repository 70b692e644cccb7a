/* FULLY_CONNECTED, int8: TFLite's reference_integer_ops::FullyConnected / FullyConnectedPerChannel
 * as LiteRT's reference op resolver runs them, bit for bit, on one of two paths the plan records
 * (hwbench/kernel_paths.py):
 *
 * - reference: TFLite's loops. Operands: input of any rank, read as [batches, depth] int8; weights
 *   [units, depth] int8 (zero point 0); bias [units] int32 or absent; scales [units, 3] int32, one
 *   hwb_double_scale per unit; output of any rank with `units` innermost, [batches * units] int8.
 * - dot: four units at a time, each word of input widened once (SXTB16) and multiplied into four
 *   accumulators (SMLAD). Operands: input; weights [units, Dp] (Dp = depth rounded up to 4,
 *   zero-filled) packed by blocks of four units (pack_rows in firmware_runner/compiler/lowering/conv.py);
 *   records [units, 4] int32, per unit the bias with the input zero point folded in (bias -
 *   input_zero_point * sum(weights row), so the products need no input offset) then its double scale;
 *   output.
 *
 * The reference kernel requantizes in double precision:
 *   out = clamp(zp_out + (int32_t)round(double(acc) * (double(s_in) * double(s_w) / double(s_out))))
 * (not with a fixed-point multiplier: that differs by 1 LSB on some inputs). The plan compiler
 * computes each unit's double scale from the float32 values TFLite holds, exactly as the reference
 * does, and hwb_round_scaled reproduces the product and its rounding in integers. Accumulation wraps
 * modulo 2^32 as TFLite's int32 arithmetic does in practice. */
#include "conv.h"
#include "simd.h"

/* Packed by lower_fully_connected in firmware_runner/compiler/lowering/conv.py, field for field. */
struct fully_connected_params {
    int32_t act_min, act_max; /* the fused activation's clamp */
    int32_t path;             /* HWB_PATH_reference or _dot */
};

/* The dot path's record of one unit. */
typedef struct {
    int32_t bias; /* with the input zero point folded in */
    hwb_double_scale scale;
} unit_record;

/* Input, weights, output and their shapes, common to both paths; sets *batches. */
static hwb_status check_shapes(const hwb_op_args *args, int32_t units, int32_t *batches) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_is_s8(in) || !hwb_is_s8(out) || in->rank < 1 || out->rank < 1) return HWB_ERR_SHAPE;
    const int32_t out_size = hwb_flat_size(out);
    if (units < 1 || out->dims[out->rank - 1] != units || out_size % units != 0) return HWB_ERR_SHAPE;
    *batches = out_size / units;
    return HWB_OK;
}

hwb_status hwb_fully_connected_s8_check(const hwb_op_args *args) {
    const struct fully_connected_params *p = (const struct fully_connected_params *)args->params;
    if (args->params_size != sizeof *p || args->params == 0 || (p->path != HWB_PATH_reference && p->path != HWB_PATH_dot))
        return HWB_ERR_PARAMS;
    const int fast = p->path == HWB_PATH_dot;
    if (!hwb_args_match(args, fast ? 3 : 4, 1, sizeof *p)) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_is_s8(filter) || filter->rank != 2) return HWB_ERR_SHAPE;
    const int32_t units = filter->dims[0];
    int32_t batches;
    hwb_status status = check_shapes(args, units, &batches);
    if (status != HWB_OK) return status;
    const int32_t depth = hwb_flat_size(in) / batches;
    if ((int64_t)batches * depth != (int64_t)hwb_flat_size(in)) return HWB_ERR_SHAPE;
    if (!hwb_conv_quant_ok(in, filter, out, p->act_min, p->act_max)) return HWB_ERR_PARAMS;
    const hwb_tensor *scales = &args->inputs[fast ? 2 : 3];
    if (scales->data == 0 || scales->dtype != HWB_INT32 || scales->rank != 2 || scales->dims[0] != units ||
        scales->dims[1] != (fast ? 4 : 3))
        return HWB_ERR_SHAPE;
    if (fast) {
        if (filter->dims[1] != hwb_round_up4(depth)) return HWB_ERR_SHAPE;
        if (((uintptr_t)filter->data & 3u) != 0) return HWB_ERR_PARAMS; /* word loads */
        const unit_record *r = (const unit_record *)scales->data;
        for (int32_t u = 0; u < units; u++)
            if (!hwb_valid_double_scale(&r[u].scale)) return HWB_ERR_PARAMS;
        return HWB_OK;
    }
    if (filter->dims[1] != depth || !hwb_bias_ok(&args->inputs[2], units)) return HWB_ERR_SHAPE;
    const hwb_double_scale *unit_scales = (const hwb_double_scale *)scales->data;
    for (int32_t u = 0; u < units; u++)
        if (!hwb_valid_double_scale(&unit_scales[u])) return HWB_ERR_PARAMS;
    return HWB_OK;
}

/* The output of one unit from its accumulator (bias included): the double-precision rescale, the
 * output zero point and the clamp. */
static inline int8_t output_value(uint32_t acc, const hwb_double_scale *scale, int32_t out_offset, int32_t act_min,
                                  int32_t act_max) {
    int32_t v = hwb_round_scaled(hwb_wrap_i32(acc), scale);
    v = hwb_wrap_i32((uint32_t)v + (uint32_t)out_offset);
    return (int8_t)hwb_clamp_i32(v, act_min, act_max);
}

static void reference(const hwb_op_args *args) {
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
            output[b * units + u] = output_value(acc, &unit_scales[u], out_offset, p->act_min, p->act_max);
        }
    }
}

/* One word's products for one unit: its four weights (one word of the packed rows) times the input
 * word's even and odd bytes, widened. */
static inline int32_t dot_word(uint32_t w, uint32_t x_even, uint32_t x_odd, int32_t acc) {
    return hwb_smlad(hwb_sxtb16_ror8(w), x_odd, hwb_smlad(hwb_sxtb16(w), x_even, acc));
}

/* The sums of four units (their packed rows, interleaved 4 bytes at a time from w) with `groups`
 * >= 1 whole words of the input x (any alignment). */
static void dot_block(const int8_t *x, const uint32_t *w, int32_t groups, int32_t sums[4]) {
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#if defined(__ARM_FEATURE_DSP)
    /* 23 instructions for 16 multiply-accumulates. */
    const uint32_t *end = w + 4 * groups;
    uint32_t even, odd, w0, w1, w2, w3, t;
    __asm__ volatile(
        "1:\n\t"
        "ldr %[odd], [%[x]], #4\n\t"
        "ldrd %[w0], %[w1], [%[w]], #8\n\t"
        "ldrd %[w2], %[w3], [%[w]], #8\n\t"
        "sxtb16 %[even], %[odd]\n\t"
        "sxtb16 %[odd], %[odd], ror #8\n\t"
        "sxtb16 %[t], %[w0]\n\t"
        "smlad %[a0], %[t], %[even], %[a0]\n\t"
        "sxtb16 %[w0], %[w0], ror #8\n\t"
        "smlad %[a0], %[w0], %[odd], %[a0]\n\t"
        "sxtb16 %[t], %[w1]\n\t"
        "smlad %[a1], %[t], %[even], %[a1]\n\t"
        "sxtb16 %[w1], %[w1], ror #8\n\t"
        "smlad %[a1], %[w1], %[odd], %[a1]\n\t"
        "sxtb16 %[t], %[w2]\n\t"
        "smlad %[a2], %[t], %[even], %[a2]\n\t"
        "sxtb16 %[w2], %[w2], ror #8\n\t"
        "smlad %[a2], %[w2], %[odd], %[a2]\n\t"
        "sxtb16 %[t], %[w3]\n\t"
        "smlad %[a3], %[t], %[even], %[a3]\n\t"
        "sxtb16 %[w3], %[w3], ror #8\n\t"
        "smlad %[a3], %[w3], %[odd], %[a3]\n\t"
        "cmp %[w], %[end]\n\t"
        "bne 1b"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w), [even] "=&r"(even),
          [odd] "=&r"(odd), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3), [t] "=&r"(t)
        : [end] "r"(end)
        : "cc", "memory");
#else
    for (int32_t g = 0; g < groups; g++, x += 4, w += 4) {
        const uint32_t v = hwb_load_u32(x), even = hwb_sxtb16(v), odd = hwb_sxtb16_ror8(v);
        a0 = dot_word(w[0], even, odd, a0);
        a1 = dot_word(w[1], even, odd, a1);
        a2 = dot_word(w[2], even, odd, a2);
        a3 = dot_word(w[3], even, odd, a3);
    }
#endif
    sums[0] = a0;
    sums[1] = a1;
    sums[2] = a2;
    sums[3] = a3;
}

static void fast(const hwb_op_args *args) {
    const struct fully_connected_params *p = (const struct fully_connected_params *)args->params;
    const hwb_tensor *in = &args->inputs[0], *filter = &args->inputs[1], *out = &args->outputs[0];
    const int32_t units = filter->dims[0], dp = filter->dims[1], batches = hwb_flat_size(out) / units;
    const int32_t depth = hwb_flat_size(in) / batches, whole = depth / 4;
    const unit_record *records = (const unit_record *)args->inputs[2].data;
    const int32_t out_offset = out->zero_point;
    int8_t *output = (int8_t *)out->data;
    for (int32_t b = 0; b < batches; b++, output += units) {
        const int8_t *x = (const int8_t *)in->data + b * depth;
        uint32_t last = 0; /* the input's last, partial word, zero-filled: never read past the input */
        for (int32_t d = whole * 4; d < depth; d++) last |= (uint32_t)(uint8_t)x[d] << (8 * (d - whole * 4));
        const uint32_t last_even = hwb_sxtb16(last), last_odd = hwb_sxtb16_ror8(last);
        const uint32_t *w = (const uint32_t *)filter->data;
        int32_t u = 0, sums[4];
        for (; u + 3 < units; u += 4, w += dp) { /* a block of four units: dp words */
            if (whole > 0) {
                dot_block(x, w, whole, sums);
            } else {
                sums[0] = sums[1] = sums[2] = sums[3] = 0;
            }
            for (int32_t k = 0; k < 4; k++) {
                const int32_t sum = dp > whole * 4 ? dot_word(w[4 * whole + k], last_even, last_odd, sums[k]) : sums[k];
                output[u + k] = output_value((uint32_t)sum + (uint32_t)records[u + k].bias, &records[u + k].scale,
                                             out_offset, p->act_min, p->act_max);
            }
        }
        for (; u < units; u++, w += dp / 4) { /* the units past the last block: one row each */
            int32_t sum = 0;
            for (int32_t g = 0; g < whole; g++) {
                const uint32_t v = hwb_load_u32(x + 4 * g);
                sum = dot_word(w[g], hwb_sxtb16(v), hwb_sxtb16_ror8(v), sum);
            }
            if (dp > whole * 4) sum = dot_word(w[whole], last_even, last_odd, sum);
            output[u] = output_value((uint32_t)sum + (uint32_t)records[u].bias, &records[u].scale, out_offset,
                                     p->act_min, p->act_max);
        }
    }
}

hwb_status hwb_fully_connected_s8(const hwb_op_args *args) {
    if (((const struct fully_connected_params *)args->params)->path == HWB_PATH_reference)
        reference(args);
    else
        fast(args);
    return HWB_OK;
}
