/* PAD (int8): the input surrounded by constant cells, as TFLite's Pad does for quantized tensors.
 * The input bytes are copied unchanged (no requantization, whatever the two zero points are) and
 * the padding cells get `pad_value`, which the plan compiler sets to the output's zero point (the
 * quantized 0.0, as TFLite does). The paddings operand is folded into the parameters.
 * Operands: input; output. */
#include <string.h>

#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_pad in firmware_runner/compiler/lowering/shape.py, field for field: keep the two in step. */
typedef struct {
    int32_t pad_value;            /* -128..127 */
    int32_t before[HWB_MAX_RANK]; /* cells added before each dimension (dims 0..rank-1; 0 past the rank) */
    int32_t after[HWB_MAX_RANK];  /* cells added after each dimension */
} hwb_pad_params;

hwb_status hwb_pad_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(hwb_pad_params))) return HWB_ERR_PARAMS;
    hwb_pad_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_valid_s8(in) || !hwb_valid_s8(out) || in->rank != out->rank) return HWB_ERR_SHAPE;
    if (!hwb_is_int8(p.pad_value)) return HWB_ERR_PARAMS;
    for (int32_t d = 0; d < HWB_MAX_RANK; d++) {
        if (d >= in->rank) {
            if (p.before[d] != 0 || p.after[d] != 0) return HWB_ERR_PARAMS;
        } else {
            if (p.before[d] < 0 || p.after[d] < 0) return HWB_ERR_PARAMS;
            if ((int64_t)in->dims[d] + p.before[d] + p.after[d] != (int64_t)out->dims[d]) return HWB_ERR_SHAPE;
        }
    }
    return HWB_OK;
}

hwb_status hwb_pad_s8(const hwb_op_args *args) {
    hwb_pad_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];

    /* Work in 4D: a rank-r tensor gets 4 - r leading dims of 1 with no padding. */
    const int32_t lead = HWB_MAX_RANK - in->rank;
    int32_t in_dims[HWB_MAX_RANK], before[HWB_MAX_RANK], after[HWB_MAX_RANK];
    for (int32_t d = 0; d < HWB_MAX_RANK; d++) {
        int32_t src = d - lead; /* this 4D dim's index in the tensor's own dims, < 0 for a leading 1 */
        in_dims[d] = src < 0 ? 1 : in->dims[src];
        before[d] = src < 0 ? 0 : p.before[src];
        after[d] = src < 0 ? 0 : p.after[src];
    }

    /* Output dims are the input's plus padding (checked), so every index below is in bounds
     * and every product fits: both tensors hold fewer than 2^31 bytes. */
    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    const int32_t o0 = in_dims[0] + before[0] + after[0], o1 = in_dims[1] + before[1] + after[1];
    const int32_t o2 = in_dims[2] + before[2] + after[2], o3 = in_dims[3] + before[3] + after[3];
    const int8_t value = (int8_t)p.pad_value;
    int32_t at = 0; /* the output is written in order */
    for (int32_t i0 = 0; i0 < o0; i0++) {
        const int32_t j0 = i0 - before[0];
        const int inside0 = j0 >= 0 && j0 < in_dims[0];
        for (int32_t i1 = 0; i1 < o1; i1++) {
            const int32_t j1 = i1 - before[1];
            const int inside1 = inside0 && j1 >= 0 && j1 < in_dims[1];
            for (int32_t i2 = 0; i2 < o2; i2++) {
                const int32_t j2 = i2 - before[2];
                if (inside1 && j2 >= 0 && j2 < in_dims[2]) {
                    const int32_t row = ((j0 * in_dims[1] + j1) * in_dims[2] + j2) * in_dims[3];
                    memset(y + at, value, (size_t)before[3]);
                    memmove(y + at + before[3], x + row, (size_t)in_dims[3]);
                    memset(y + at + before[3] + in_dims[3], value, (size_t)after[3]);
                } else {
                    memset(y + at, value, (size_t)o3);
                }
                at += o3;
            }
        }
    }
    return HWB_OK;
}
