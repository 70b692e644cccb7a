/* AVERAGE_POOL_2D, int8 NHWC: TFLite's reference int8 average pool
 * (reference/integer_ops/pooling.h). Each output is the sum of the window's inputs that lie inside
 * the input (padding is not counted), divided by their count rounding halves away from zero, and
 * clamped to the activation range. No requantization: the output takes the input's scale.
 *
 * Operands: input, output (both rank 4, int8). */
#include "pooling.h"

/* The sum of the window's inputs divided by their count, rounding halves away from zero. */
static inline int32_t average(const int8_t *window, int32_t rows, int32_t cols, int32_t row_stride,
                              int32_t step) {
    int32_t acc = 0, count = rows * cols;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *src = window + r * row_stride;
        for (int32_t k = 0; k < cols; k++) acc += src[k * step];
    }
    return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

hwb_status hwb_average_pool_s8_check(const hwb_op_args *args) {
    hwb_status status = hwb_pool_check(args);
    if (status != HWB_OK) return status;
    const hwb_tensor *in = &args->inputs[0];
    return (int64_t)in->dims[1] * in->dims[2] > (1 << 24) ? HWB_ERR_SHAPE : HWB_OK; /* a window's int8 sum fits in int32 */
}

hwb_status hwb_average_pool_s8(const hwb_op_args *args) { return hwb_pool_s8(args, average); }
