/* HARD_SWISH on int8: x * relu6(x + 3) / 6, in the 16-bit fixed point of TFLite's
 * reference_ops::HardSwish (kernels/internal/reference/hard_swish.h), operation for operation.
 *
 * TFLite does this arithmetic on int16_t values, and some of it wraps or rounds in ways only int16
 * does (a rounding shift by 16 or more, an int16 sum with the zero point). Every value here is an
 * int32 holding an int16, and wrap16 brings each result back exactly where C++'s int16 would.
 * The plan compiler computes the two 16-bit multipliers and exponents as HardSwishPrepare does.
 * In place is fine: element i is read before it is written. */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_hard_swish in firmware_runner/compiler/lowering/activations.py: same fields, same order. */
typedef struct {
    int32_t reluish_multiplier; /* int16 fixed point: (input scale / 128) / (3 / 32768) ... */
    int32_t reluish_exponent;   /* ... times 2^exponent, -31..30 */
    int32_t output_multiplier;  /* int16 fixed point: (input scale / 128) / output scale ... */
    int32_t output_exponent;    /* ... times 2^exponent, -31..0 */
} hard_swish_params;

#define INT16_LO (-32768)
#define INT16_HI 32767

/* The int16 that C++ gets when it stores an int into an int16_t (two's complement wrap). */
static int32_t wrap16(int32_t x) { return (int32_t)(((uint32_t)x + 0x8000u) & 0xFFFFu) - 0x8000; }

/* gemmlowp::SaturatingRoundingDoublingHighMul<int16_t>. */
static int32_t srdhm16(int32_t a, int32_t b) {
    if (a == INT16_LO && b == INT16_LO) return INT16_HI;
    const int32_t ab = a * b; /* |a|, |b| <= 2^15: fits */
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return wrap16((ab + nudge) / (1 << 15)); /* C99 division truncates toward zero, as C++ does */
}

/* reference_ops::SaturatingDoublingHighMul: the same without the rounding nudge. */
static int32_t sdhm16(int32_t a, int32_t b) {
    if (a == INT16_LO && b == INT16_LO) return INT16_HI;
    return wrap16((a * b) / (1 << 15));
}

/* reference_ops::SaturatingLeftShift; amount 0..29. */
static int32_t saturating_left_shift16(int32_t x, int32_t amount) {
    const int64_t r = (int64_t)x * ((int64_t)1 << amount);
    return r > INT16_HI ? INT16_HI : (r < INT16_LO ? INT16_LO : (int32_t)r);
}

/* gemmlowp::RoundingDivideByPOT<int16_t>, exponent 0..31. Its mask (1 << exponent) - 1 is stored in
 * an int16_t, so from exponent 16 on the mask is -1 and the result is 1 for x >= 0, -1 for x < 0. */
static int32_t rounding_divide_by_pot16(int32_t x, int32_t exponent) {
    const int32_t mask = wrap16((int32_t)(((int64_t)1 << exponent) - 1));
    const int32_t remainder = x & mask;
    const int32_t threshold = wrap16((mask >> 1) + (x < 0 ? 1 : 0));
    return wrap16((x >> exponent) + (remainder > threshold ? 1 : 0)); /* >> of a negative is arithmetic on gcc */
}

hwb_status hwb_hard_swish_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(hard_swish_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_same_s8(in, out)) return HWB_ERR_SHAPE;
    const hard_swish_params *p = (const hard_swish_params *)args->params;
    if (p->reluish_multiplier < INT16_LO || p->reluish_multiplier > INT16_HI || p->output_multiplier < INT16_LO ||
        p->output_multiplier > INT16_HI || p->reluish_exponent < -31 || p->reluish_exponent > 30 ||
        p->output_exponent < -31 || p->output_exponent > 0 || !hwb_is_int8(in->zero_point) ||
        !hwb_is_int8(out->zero_point))
        return HWB_ERR_PARAMS;

    return HWB_OK;
}

hwb_status hwb_hard_swish_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const hard_swish_params *p = (const hard_swish_params *)args->params;

    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    const int32_t count = hwb_flat_size(in);
    for (int32_t i = 0; i < count; i++) {
        const int32_t value = (int32_t)x[i] - in->zero_point; /* -255..255 */
        const int32_t hires = value * (1 << 7);                 /* fits int16 */
        const int32_t preshift_output = srdhm16(hires, p->output_multiplier);
        /* The relu-ish multiplier: x on a scale where 3 is 32768, saturated to [-1, 1]. */
        int32_t reluish = hires;
        if (p->reluish_exponent > 0) reluish = saturating_left_shift16(reluish, p->reluish_exponent - 1);
        reluish = srdhm16(reluish, p->reluish_multiplier);
        if (p->reluish_exponent > 0) reluish = saturating_left_shift16(reluish, 1);
        if (p->reluish_exponent < 0) reluish = rounding_divide_by_pot16(reluish, -p->reluish_exponent);
        reluish = wrap16((reluish + (1 << 15)) >> 1); /* [-1, 1] -> [0, 1] */
        const int32_t preshift = sdhm16(reluish, preshift_output);
        int32_t v = rounding_divide_by_pot16(preshift, -p->output_exponent);
        v = wrap16(v + out->zero_point); /* an int16 sum in TFLite: it wraps */
        v = v > 127 ? 127 : (v < -128 ? -128 : v);
        y[i] = (int8_t)v;
    }
    return HWB_OK;
}
