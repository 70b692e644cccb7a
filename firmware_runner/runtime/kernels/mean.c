/* MEAN over any set of axes, int8: what LiteRT's reference int8 MEAN computes (reference/reduce.h
 * QuantizedMeanOrSum, the path lite/kernels/reduce.cc takes for every int8 mean: any axes, keep_dims
 * or not, equal or different quantization). For each output element, over the `count` inputs it
 * averages:
 *   out = clamp(MultiplyByQuantizedMultiplier(sum(q) - input_zero_point * count) + output_zero_point)
 * with 1 / count already folded into the multiplier by the plan compiler. The outputs are written in
 * order, each summing its own inputs, so no scratch accumulators are needed; the dims are first
 * normalized as TFLite's ResolveAxis does, so a global pooling is one loop per output.
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

/* Up to two dims of one kind (averaged or kept), outer first, in elements of the input; unused: size 1. */
typedef struct {
    int32_t size[2];
    int32_t stride[2];
} mean_dims;

/* The input's dims as TFLite's ResolveAxis sees them: dims of size 1 left out and neighbours of the
 * same kind merged, so that at most two averaged and two kept dims alternate. */
static void mean_split(const hwb_tensor *in, int32_t axes, mean_dims *kept, mean_dims *averaged) {
    *kept = *averaged = (mean_dims){{1, 1}, {0, 0}};
    int32_t stride = 1, previous = -1; /* the kind of the last dim taken, walking from the innermost */
    for (int32_t i = in->rank - 1; i >= 0; i--) {
        int32_t size = in->dims[i], kind = (axes >> i) & 1;
        if (size == 1) continue;
        mean_dims *m = kind ? averaged : kept;
        if (kind == previous) {
            m->size[0] *= size; /* contiguous with the dim inside it: one dim with its stride */
        } else {
            m->size[1] = m->size[0], m->stride[1] = m->stride[0];
            m->size[0] = size, m->stride[0] = stride;
        }
        previous = kind;
        stride *= size; /* <= the flat size: the input's dims agree with its byte size */
    }
}

/* How many inputs each output averages, and the loops' dims. */
static int32_t mean_count(const hwb_tensor *in, int32_t axes, mean_dims *kept, mean_dims *averaged) {
    mean_split(in, axes, kept, averaged);
    return averaged->size[0] * averaged->size[1];
}

hwb_status hwb_mean_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(struct mean_params))) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const struct mean_params *p = (const struct mean_params *)args->params;
    if (!hwb_valid_shift(p->shift) || p->multiplier < 0) return HWB_ERR_PARAMS;
    if (!hwb_valid_s8(in) || !hwb_valid_s8(out)) return HWB_ERR_SHAPE;
    if (p->axes <= 0 || p->axes >= (1 << in->rank)) return HWB_ERR_PARAMS;
    if (!mean_output_fits(in, out, p->axes)) return HWB_ERR_SHAPE;
    if (!hwb_is_int8(in->zero_point) || !hwb_is_int8(out->zero_point)) return HWB_ERR_PARAMS;
    mean_dims kept, averaged;
    return mean_count(in, p->axes, &kept, &averaged) > (1 << 24) ? HWB_ERR_SHAPE : HWB_OK; /* int8 sums fit int32 */
}

hwb_status hwb_mean_s8(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const struct mean_params *p = (const struct mean_params *)args->params;
    mean_dims kept, averaged;
    const int32_t count = mean_count(in, p->axes, &kept, &averaged);
    /* Integer sums do not depend on the order: the longer averaged dim runs innermost. */
    const int32_t inner = averaged.size[0] >= averaged.size[1] ? 0 : 1, outer = 1 - inner;

    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    for (int32_t k0 = 0; k0 < kept.size[0]; k0++)
        for (int32_t k1 = 0; k1 < kept.size[1]; k1++) {
            const int8_t *corner = x + k0 * kept.stride[0] + k1 * kept.stride[1];
            int32_t sum = 0;
            for (int32_t a = 0; a < averaged.size[outer]; a++) {
                const int8_t *row = corner + a * averaged.stride[outer];
                for (int32_t b = 0; b < averaged.size[inner]; b++) sum += row[b * averaged.stride[inner]];
            }
            /* TFLite's static_cast<int32_t> of an int64: modulo 2^32. */
            int32_t shifted = hwb_wrap_i32((uint32_t)((int64_t)sum - (int64_t)in->zero_point * count));
            /* The rescaled value may be any int32 for a plan's multiplier: offset it in 64 bits. */
            int64_t v = (int64_t)hwb_multiply_by_quantized_multiplier(shifted, p->multiplier, p->shift) + out->zero_point;
            *y++ = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
        }
    return HWB_OK;
}
