/* TRANSPOSE (int8): output dim d is input dim perm[d], as TFLite's reference Transpose. Bytes are
 * moved unchanged; the perm operand is folded into the parameters. Operands: input; output. */
#include <string.h>

#include "../hwb_ops.h"

/* Packed by lower_transpose in firmware_runner/compiler/lowering/shape.py, field for field: keep the two in step. */
typedef struct {
    int32_t perm[HWB_MAX_RANK]; /* a permutation of 0..rank-1 in the first `rank` entries; perm[d] == d past it */
} hwb_transpose_params;

hwb_status hwb_transpose_s8_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, sizeof(hwb_transpose_params))) return HWB_ERR_PARAMS;
    hwb_transpose_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (!hwb_valid_s8(in) || !hwb_valid_s8(out) || in->rank != out->rank) return HWB_ERR_SHAPE;
    const int32_t rank = in->rank;

    int seen[HWB_MAX_RANK] = {0, 0, 0, 0};
    for (int32_t d = 0; d < HWB_MAX_RANK; d++) {
        if (d >= rank) {
            if (p.perm[d] != d) return HWB_ERR_PARAMS;
            continue;
        }
        if (p.perm[d] < 0 || p.perm[d] >= rank || seen[p.perm[d]]) return HWB_ERR_PARAMS;
        seen[p.perm[d]] = 1;
    }
    for (int32_t d = 0; d < rank; d++)
        if (out->dims[d] != in->dims[p.perm[d]]) return HWB_ERR_SHAPE;
    return HWB_OK;
}

hwb_status hwb_transpose_s8(const hwb_op_args *args) {
    hwb_transpose_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    const int32_t rank = in->rank;

    /* In 4D (leading dims of 1): the input stride of each output dim, walked in output order. */
    const int32_t lead = HWB_MAX_RANK - rank;
    int32_t in_stride[HWB_MAX_RANK], step[HWB_MAX_RANK], size[HWB_MAX_RANK];
    int32_t stride = 1;
    for (int32_t d = rank - 1; d >= 0; d--) {
        in_stride[d] = stride;
        stride *= in->dims[d]; /* < 2^31: the tensor holds fewer bytes */
    }
    for (int32_t d = 0; d < HWB_MAX_RANK; d++) {
        size[d] = d < lead ? 1 : out->dims[d - lead];
        step[d] = d < lead ? 0 : in_stride[p.perm[d - lead]];
    }
    const int8_t *x = (const int8_t *)in->data;
    int8_t *y = (int8_t *)out->data;
    int32_t at = 0;
    for (int32_t i0 = 0; i0 < size[0]; i0++)
        for (int32_t i1 = 0; i1 < size[1]; i1++)
            for (int32_t i2 = 0; i2 < size[2]; i2++) {
                /* Every offset is a valid input index: each term stays below its dim's extent. */
                const int32_t base = i0 * step[0] + i1 * step[1] + i2 * step[2];
                if (step[3] == 1) {
                    memmove(y + at, x + base, (size_t)size[3]);
                    at += size[3];
                } else {
                    for (int32_t i3 = 0; i3 < size[3]; i3++) y[at++] = x[base + i3 * step[3]];
                }
            }
    return HWB_OK;
}
