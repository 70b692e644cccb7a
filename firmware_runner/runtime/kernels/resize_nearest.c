/* RESIZE_NEAREST_NEIGHBOR (int8, NHWC): each output pixel copies the nearest input pixel, chosen
 * exactly as TFLite's reference_ops::ResizeNearestNeighbor does it, in float32 arithmetic:
 *   scale = align_corners && out > 1 ? (in - 1) / (float)(out - 1) : in / (float)out
 *   v     = (i + (half_pixel_centers ? 0.5f : 0.0f)) * scale
 *   index = min(align_corners ? round(v) : floor(v), in - 1), and max(0, .) with half_pixel_centers
 * (round: halves away from zero). Bytes are copied unchanged. The constant size operand is folded
 * into the output's shape. Operands: input; output. */
#include <string.h>

#include "../hwb_ops.h"

/* Packed by lower_resize_nearest in firmware_runner/compiler/lowering/shape.py, field for field: keep the two in step. */
typedef struct {
    int32_t align_corners;      /* 0 or 1 */
    int32_t half_pixel_centers; /* 0 or 1 */
} hwb_resize_nearest_params;

/* The input index output index `i` reads along an axis of `in_size` -> `out_size` (both >= 1).
 * Every value here is >= 0, so truncation is floor; values are compared with (float)in_size
 * before the conversion, so it can never overflow. */
static int32_t nearest(int32_t i, int32_t in_size, int32_t out_size, int align_corners, int half_pixel_centers) {
    const float scale = (align_corners && out_size > 1) ? (float)(in_size - 1) / (float)(out_size - 1)
                                                        : (float)in_size / (float)out_size;
    const float offset = half_pixel_centers ? 0.5f : 0.0f;
    const float v = ((float)i + offset) * scale;
    int32_t index;
    if (!(v < (float)in_size)) {
        index = in_size - 1; /* floor(v) and round(v) are both >= in_size: the min() below */
    } else {
        index = (int32_t)v; /* floor(v), < 2^31 */
        /* round half away from zero; a float >= 2^23 is already an integer. The comparison (not
         * v - index >= 0.5f) keeps the product v out of any fused multiply-add. */
        if (align_corners && index < (1 << 23) && v >= (float)index + 0.5f) index++;
        if (index > in_size - 1) index = in_size - 1;
    }
    if (half_pixel_centers && index < 0) index = 0;
    return index;
}

hwb_status hwb_resize_nearest_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(hwb_resize_nearest_params))) return HWB_ERR_PARAMS;
    hwb_resize_nearest_params p;
    memcpy(&p, args->params, sizeof p);
    if ((p.align_corners != 0 && p.align_corners != 1) || (p.half_pixel_centers != 0 && p.half_pixel_centers != 1))
        return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_valid_s8(in) || !hwb_valid_s8(out) || in->rank != 4 || out->rank != 4 || in->dims[0] != out->dims[0] ||
        in->dims[3] != out->dims[3])
        return HWB_ERR_SHAPE;

    return HWB_OK;
}

hwb_status hwb_resize_nearest_s8(const hwb_op_args *args) {
    hwb_resize_nearest_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];

    const int32_t batches = in->dims[0], in_h = in->dims[1], in_w = in->dims[2], depth = in->dims[3];
    const int32_t out_h = out->dims[1], out_w = out->dims[2];
    const int32_t row = in_w * depth, image = in_h * row; /* < 2^31: the input holds fewer bytes */
    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    int32_t at = 0;
    for (int32_t b = 0; b < batches; b++) {
        for (int32_t oy = 0; oy < out_h; oy++) {
            const int32_t iy = nearest(oy, in_h, out_h, p.align_corners, p.half_pixel_centers);
            for (int32_t ox = 0; ox < out_w; ox++) {
                const int32_t ix = nearest(ox, in_w, out_w, p.align_corners, p.half_pixel_centers);
                memmove(y + at, x + b * image + iy * row + ix * depth, (size_t)depth);
                at += depth;
            }
        }
    }
    return HWB_OK;
}
