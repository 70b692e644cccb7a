/* CONCATENATION (int8): the inputs side by side along one axis, as TFLite's reference
 * Concatenation. TFLite's int8 kernel never requantizes: it refuses (at Prepare) any input whose
 * scale or zero point differs from the output's, and so does this kernel; bytes are copied unchanged.
 * Operands: 1..HWB_MAX_INPUTS inputs; output. */
#include <string.h>

#include "../hwb_ops.h"

/* Packed by lower_concatenation in firmware_runner/compiler/lowering/shape.py, field for field: keep the two in step. */
typedef struct {
    int32_t axis; /* 0..rank-1 (the compiler resolves a negative axis) */
} hwb_concatenation_params;

hwb_status hwb_concatenation_s8_check(const hwb_op_args *args) {
    if (args->input_count < 1 || args->input_count > HWB_MAX_INPUTS || args->output_count != 1 ||
        args->params == 0 || args->params_size != sizeof(hwb_concatenation_params))
        return HWB_ERR_PARAMS;
    hwb_concatenation_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *out = &args->outputs[0];
    if (!hwb_valid_s8(out)) return HWB_ERR_SHAPE;
    const int32_t rank = out->rank;
    if (p.axis < 0 || p.axis >= rank) return HWB_ERR_PARAMS;

    int64_t axis_total = 0;
    for (uint32_t k = 0; k < args->input_count; k++) {
        const hwb_tensor *in = &args->inputs[k];
        if (!hwb_valid_s8(in) || in->rank != rank) return HWB_ERR_SHAPE;
        if (in->zero_point != out->zero_point || !(in->scale == out->scale)) return HWB_ERR_SHAPE;
        for (int32_t d = 0; d < rank; d++)
            if (d != p.axis && in->dims[d] != out->dims[d]) return HWB_ERR_SHAPE;
        axis_total += in->dims[p.axis];
    }
    return axis_total == out->dims[p.axis] ? HWB_OK : HWB_ERR_SHAPE;
}

hwb_status hwb_concatenation_s8(const hwb_op_args *args) {
    hwb_concatenation_params p;
    memcpy(&p, args->params, sizeof p);
    const hwb_tensor *out = &args->outputs[0];
    const int32_t rank = out->rank;

    /* Each input contributes dims[axis] * inner contiguous bytes to each of `outer` output slices. */
    int32_t outer = 1, inner = 1;
    for (int32_t d = 0; d < p.axis; d++) outer *= out->dims[d];
    for (int32_t d = p.axis + 1; d < rank; d++) inner *= out->dims[d];
    int8_t *y = (int8_t *)out->data;
    int32_t at = 0;
    for (int32_t o = 0; o < outer; o++) {
        for (uint32_t k = 0; k < args->input_count; k++) {
            const hwb_tensor *in = &args->inputs[k];
            const int32_t chunk = in->dims[p.axis] * inner; /* <= the input's byte size */
            memmove(y + at, (const int8_t *)in->data + o * chunk, (size_t)chunk);
            at += chunk;
        }
    }
    return HWB_OK;
}
