/* MEAN over any set of axes, int8: what LiteRT's reference int8 MEAN computes (reference/reduce.h
 * QuantizedMeanOrSum, the path lite/kernels/reduce.cc takes for every int8 mean: any axes, keep_dims
 * or not, equal or different quantization). For each output element, over the `count` inputs it
 * averages:
 *   out = clamp(MultiplyByQuantizedMultiplier(sum(q) - input_zero_point * count) + output_zero_point)
 * with 1 / count already folded into the multiplier by the plan compiler. The outputs are written in
 * order, each summing its own inputs, so no scratch accumulators are needed.
 *
 * Operands: input (rank 0-4), output: the input's dims with the averaged ones set to 1 (keep_dims) or
 * dropped (the same bytes either way); int8, zero points from the records. */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_mean in firmware_runner/compiler/lowering/pooling.py, in this order. */
struct mean_params {
    int32_t multiplier; /* input_scale / output_scale / count, with `shift` */
    int32_t shift;
    int32_t axes; /* bit d set: the input's dimension d is averaged over */
};

/* The output's dims are the input's with the averaged ones set to 1, or left out. */
static int mean_output_fits(const hwb_tensor *in, const hwb_tensor *out, int32_t axes) {
    int kept = out->rank == in->rank, dropped = 1;
    int32_t j = 0; /* the next output dim when the averaged ones are left out */
    for (int32_t i = 0; i < in->rank; i++) {
        int averaged = (axes >> i) & 1;
        if (kept && out->dims[i] != (averaged ? 1 : in->dims[i])) kept = 0;
        if (!averaged) dropped = dropped && j < out->rank && out->dims[j++] == in->dims[i];
    }
    return kept || (dropped && j == out->rank);
}

/* The sum of the block of `extent` inputs from `corner` (4-D, in units of `stride`). */
static int32_t block_sum(const int8_t *corner, const int32_t extent[4], const int32_t stride[4]) {
    int32_t sum = 0;
    for (int32_t a = 0; a < extent[0]; a++)
        for (int32_t b = 0; b < extent[1]; b++)
            for (int32_t c = 0; c < extent[2]; c++) {
                const int8_t *row = corner + a * stride[0] + b * stride[1] + c * stride[2];
                for (int32_t d = 0; d < extent[3]; d++) sum += row[d * stride[3]];
            }
    return sum;
}

hwb_status hwb_mean_s8(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(struct mean_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const struct mean_params *p = (const struct mean_params *)args->params;
    if (!hwb_valid_shift(p->shift) || p->multiplier < 0) return HWB_ERR_PARAMS;
    if (!hwb_valid_s8(in) || !hwb_valid_s8(out)) return HWB_ERR_SHAPE;
    if (p->axes <= 0 || p->axes >= (1 << in->rank)) return HWB_ERR_PARAMS;
    if (!mean_output_fits(in, out, p->axes)) return HWB_ERR_SHAPE;
    if (!hwb_is_int8(in->zero_point) || !hwb_is_int8(out->zero_point)) return HWB_ERR_PARAMS;

    /* The input as 4-D (leading 1s): each dim is walked either by the outputs or by each output's sum. */
    int32_t outer[4], inner[4], stride[4], count = 1;
    for (int32_t d = 3, size_below = 1; d >= 0; d--) {
        int32_t i = d - (4 - in->rank); /* the input's own dim, < 0 for a leading 1 */
        int32_t size = i >= 0 ? in->dims[i] : 1;
        int averaged = i >= 0 && ((p->axes >> i) & 1);
        outer[d] = averaged ? 1 : size;
        inner[d] = averaged ? size : 1;
        stride[d] = size_below; /* < the flat size: the input's dims agree with its byte size */
        size_below *= size;
        count *= inner[d];
    }
    if (count > (1 << 24)) return HWB_ERR_SHAPE; /* the int8 sum fits in int32 */

    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    for (int32_t a = 0; a < outer[0]; a++)
        for (int32_t b = 0; b < outer[1]; b++)
            for (int32_t c = 0; c < outer[2]; c++)
                for (int32_t d = 0; d < outer[3]; d++) {
                    int32_t sum = block_sum(x + a * stride[0] + b * stride[1] + c * stride[2] + d * stride[3], inner, stride);
                    /* TFLite's static_cast<int32_t> of an int64: modulo 2^32. */
                    int32_t shifted = hwb_wrap_i32((uint32_t)((int64_t)sum - (int64_t)in->zero_point * count));
                    /* The rescaled value may be any int32 for a plan's multiplier: offset it in 64 bits. */
                    int64_t v = (int64_t)hwb_multiply_by_quantized_multiplier(shifted, p->multiplier, p->shift) +
                                out->zero_point;
                    *y++ = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
                }
    return HWB_OK;
}
