/* QUANTIZE to int8, from float32 (a model's float input) or from int8 (a requantization), as
 * TFLite's quantize.cc runs them with the reference kernels:
 *
 *   float32: reference_ops::AffineQuantize: out = clamp(static_cast<int32_t>(roundf(in / out_scale))
 *            + out_zp, -128, 127), the division in float32 with the output tensor's scale, rounding
 *            halves away from zero;
 *   int8:    reference_ops::Requantize: out = clamp(out_zp + MultiplyByQuantizedMultiplier(in - in_zp,
 *            multiplier, shift), -128, 127), the multiplier double(in_scale) / double(out_scale).
 *
 * TFLite converts the rounded quotient to int32 before it clamps. For NaN, and for a quotient
 * outside the int32 range, that conversion is undefined in C++; the reference interpreter (x86-64)
 * gets INT32_MIN, and adding a negative zero point then wraps around to a large positive number.
 * So NaN, -inf, +inf and any |in / out_scale| >= 2^31 give 127 when out_zp < 0 and -128 when
 * out_zp >= 0 (measured against the interpreter: tests/test_kernels_quantize.py). This kernel
 * reproduces that without undefined behaviour.
 * int8 -> int8 may run in place: element i is read before it is written. */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_quantize in firmware_runner/compiler/lowering/quantize.py: same fields, same order. */
typedef struct {
    int32_t multiplier; /* int8 input: input scale / output scale as Q31 ... */
    int32_t shift;      /* ... times 2^shift. A float input uses the output tensor's scale; both 0. */
} quantize_params;

#define FLOAT32_MAX 3.40282347e38f

static int int8_zero_point(int32_t zp) { return zp >= -128 && zp <= 127; }

/* std::round on a float: halves away from zero. NaN, infinities and |q| >= 2^23 (integers
 * already) pass through unchanged. No libm. */
static float round_half_away(float q) {
    if (!(q > -8388608.0f && q < 8388608.0f)) return q;
    int32_t r = (int32_t)q;            /* toward zero; in range */
    const float fraction = q - (float)r; /* exact for |q| < 2^23 */
    if (fraction >= 0.5f) r += 1;
    if (fraction <= -0.5f) r -= 1;
    return (float)r;
}

/* What x86-64's cvttss2si, TFLite's static_cast<int32_t>, gives: INT32_MIN for NaN and for
 * anything outside [-2^31, 2^31). */
static int32_t x86_float_to_int32(float r) { return r >= -2147483648.0f && r < 2147483648.0f ? (int32_t)r : INT32_MIN; }

static int8_t affine_quantize(float value, float scale, int32_t zero_point) {
    int64_t r = (int64_t)x86_float_to_int32(round_half_away(value / scale)) + zero_point;
    if (r < INT32_MIN) r += (int64_t)1 << 32; /* TFLite's int32 sum wraps */
    if (r > INT32_MAX) r -= (int64_t)1 << 32;
    return (int8_t)(r > 127 ? 127 : (r < -128 ? -128 : r));
}

hwb_status hwb_quantize_s8_check(const hwb_op_args *args) {
    if (args->input_count != 1 || args->output_count != 1 || args->params_size != sizeof(quantize_params))
        return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (in->data == 0 || out->data == 0 || (in->dtype != HWB_FLOAT32 && in->dtype != HWB_INT8) ||
        out->dtype != HWB_INT8 || hwb_flat_size(in) != hwb_flat_size(out) ||
        (uint64_t)in->nbytes != (uint64_t)out->nbytes * (in->dtype == HWB_FLOAT32 ? 4u : 1u))
        return HWB_ERR_SHAPE;
    const quantize_params *p = (const quantize_params *)args->params;
    if (!hwb_valid_shift(p->shift) || !int8_zero_point(out->zero_point)) return HWB_ERR_PARAMS;
    if (in->dtype == HWB_FLOAT32)
        return out->scale > 0.0f && out->scale <= FLOAT32_MAX ? HWB_OK : HWB_ERR_PARAMS; /* also refuses NaN */
    return int8_zero_point(in->zero_point) ? HWB_OK : HWB_ERR_PARAMS;
}

hwb_status hwb_quantize_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const quantize_params *p = (const quantize_params *)args->params;
    int8_t *y = (int8_t *)out->data;
    const int32_t count = hwb_flat_size(out);
    if (in->dtype == HWB_FLOAT32) {
        const float *x = (const float *)in->data;
        for (int32_t i = 0; i < count; i++) y[i] = affine_quantize(x[i], out->scale, out->zero_point);
        return HWB_OK;
    }
    const int8_t *x = (const int8_t *)in->data;
    for (int32_t i = 0; i < count; i++) {
        int64_t r = (int64_t)out->zero_point + /* int64: the product may be near INT32_MAX */
                    hwb_multiply_by_quantized_multiplier((int32_t)x[i] - in->zero_point, p->multiplier, p->shift);
        r = r < -128 ? -128 : (r > 127 ? 127 : r);
        y[i] = (int8_t)r;
    }
    return HWB_OK;
}
