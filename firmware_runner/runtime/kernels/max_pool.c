/* MAX_POOL_2D, int8 NHWC: TFLite's reference int8 max pool (reference/integer_ops/pooling.h).
 * Each output is the largest of the window's inputs that lie inside the input (padding is never
 * the maximum), clamped to the activation range. No requantization: the output takes the input's
 * scale.
 *
 * Operands: input, output (both rank 4, int8). */
#include "pooling.h"

/* The largest of the window's inputs. */
static inline int32_t maximum(const int8_t *window, int32_t rows, int32_t cols, int32_t row_stride,
                              int32_t step) {
    int32_t max = -128;
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *src = window + r * row_stride;
        for (int32_t k = 0; k < cols; k++)
            if (src[k * step] > max) max = src[k * step];
    }
    return max;
}

hwb_status hwb_max_pool_s8_check(const hwb_op_args *args) { return hwb_pool_check(args); }

hwb_status hwb_max_pool_s8(const hwb_op_args *args) { return hwb_pool_s8(args, maximum); }
