/* MEAN over height and width, int8 NHWC: what LiteRT's reference int8 MEAN computes
 * (reference/reduce.h QuantizedMeanOrSum, the path lite/kernels/reduce.cc takes for every int8
 * mean, keep_dims or not, equal or different quantization). Per batch and channel:
 *   out = clamp(MultiplyByQuantizedMultiplier(sum(q) - input_zero_point * H * W) + output_zero_point)
 * with 1 / (H * W) already folded into the multiplier by the plan compiler. The sum runs
 * channel-outer over the input, so no scratch accumulators are needed.
 *
 * Operands: input (N, H, W, C), output (N, 1, 1, C) or (N, C); int8, zero points from the records. */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_mean in firmware_runner/compiler/lowering/pooling.py, in this order. */
struct mean_params {
    int32_t multiplier; /* input_scale / output_scale / (H * W), with `shift` */
    int32_t shift;
};

hwb_status hwb_mean_s8(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(struct mean_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const struct mean_params *p = (const struct mean_params *)args->params;
    if (!hwb_valid_shift(p->shift) || p->multiplier < 0) return HWB_ERR_PARAMS;
    if (!hwb_is_s8(in) || !hwb_is_s8(out) || in->rank != 4) return HWB_ERR_SHAPE;
    const int32_t batches = in->dims[0], height = in->dims[1], width = in->dims[2], depth = in->dims[3];
    int keep_dims = out->rank == 4 && out->dims[0] == batches && out->dims[1] == 1 && out->dims[2] == 1 &&
                    out->dims[3] == depth;
    int dropped = out->rank == 2 && out->dims[0] == batches && out->dims[1] == depth;
    if (!keep_dims && !dropped) return HWB_ERR_SHAPE;
    if (!hwb_is_int8(in->zero_point) || !hwb_is_int8(out->zero_point)) return HWB_ERR_PARAMS;
    const int32_t count = height * width; /* <= the input's flat size */
    if (count > (1 << 24)) return HWB_ERR_SHAPE; /* the int8 sum fits in int32 */

    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    for (int32_t b = 0; b < batches; b++) {
        const int8_t *image = x + b * count * depth;
        for (int32_t c = 0; c < depth; c++) {
            int32_t sum = 0;
            for (int32_t i = 0; i < count; i++) sum += image[i * depth + c];
            /* TFLite's static_cast<int32_t> of an int64: modulo 2^32. */
            int32_t shifted = hwb_wrap_i32((uint32_t)((int64_t)sum - (int64_t)in->zero_point * count));
            /* The rescaled value may be any int32 for a plan's multiplier: offset it in 64 bits. */
            int64_t v = (int64_t)hwb_multiply_by_quantized_multiplier(shifted, p->multiplier, p->shift) + out->zero_point;
            y[b * depth + c] = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        }
    }
    return HWB_OK;
}
