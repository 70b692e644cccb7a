/* ADD, int8, with broadcasting: TFLite's reference int8 add (reference/integer_ops/add.h, AddFunc
 * and BroadcastAdd6DSlow). Each input is offset by its zero point, scaled up by 2^left_shift,
 * rescaled to a common scale, summed, rescaled to the output and clamped.
 *
 * Operands: input 1, input 2, output; all int8, per-tensor quantized, zero points from the tensor
 * records. The output may be planned on top of input 1 or input 2 (same size, no broadcast): the
 * loop reads element i of both inputs before it writes element i. */
#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_add_sub in firmware_runner/lowering/elementwise.py, in this order. */
struct add_params {
    int32_t left_shift;
    int32_t input1_multiplier;
    int32_t input1_shift; /* <= 0 */
    int32_t input2_multiplier;
    int32_t input2_shift; /* <= 0 */
    int32_t output_multiplier;
    int32_t output_shift; /* <= 0 */
    int32_t activation_min;
    int32_t activation_max;
};

/* The shapes of both inputs and the output right-aligned to 4 dims; an input's stride is 0 along
 * a dim it broadcasts. */
struct broadcast {
    int32_t dims[4];
    int32_t stride1[4];
    int32_t stride2[4];
};

static int int8_zero_point(const hwb_tensor *t) { return t->zero_point >= -128 && t->zero_point <= 127; }

static void padded_dims(const hwb_tensor *t, int32_t dims[4]) {
    int32_t pad = 4 - t->rank;
    for (int32_t d = 0; d < 4; d++) dims[d] = d < pad ? 1 : t->dims[d - pad];
}

/* Numpy/TFLite broadcasting: per dim the inputs agree or one of them is 1, and the output has the
 * larger rank and the larger extent. */
static hwb_status broadcast_shapes(const hwb_tensor *a, const hwb_tensor *b, const hwb_tensor *out,
                                   struct broadcast *bc) {
    int32_t da[4], db[4], dout[4];
    if (a->rank > 4 || b->rank > 4 || out->rank != (a->rank > b->rank ? a->rank : b->rank)) return HWB_ERR_SHAPE;
    padded_dims(a, da);
    padded_dims(b, db);
    padded_dims(out, dout);
    for (int32_t d = 0; d < 4; d++) {
        if (da[d] != db[d] && da[d] != 1 && db[d] != 1) return HWB_ERR_SHAPE;
        if (dout[d] != (da[d] == 1 ? db[d] : da[d])) return HWB_ERR_SHAPE;
        bc->dims[d] = dout[d];
    }
    int32_t sa = 1, sb = 1;
    for (int32_t d = 3; d >= 0; d--) {
        bc->stride1[d] = da[d] == 1 ? 0 : sa;
        bc->stride2[d] = db[d] == 1 ? 0 : sb;
        sa *= da[d];
        sb *= db[d];
    }
    return HWB_OK;
}

static int8_t add_one(int32_t x, int32_t y, int32_t offset1, int32_t offset2, int32_t output_offset,
                      const struct add_params *p) {
    /* |x + offset| <= 255 and left_shift <= 20: the shifted values and their sum fit in 31 bits. */
    int32_t shifted1 = (x + offset1) * (1 << p->left_shift);
    int32_t shifted2 = (y + offset2) * (1 << p->left_shift);
    int32_t scaled1 = hwb_rounding_divide_by_pot(hwb_saturating_rounding_doubling_high_mul(shifted1, p->input1_multiplier),
                                                 -p->input1_shift);
    int32_t scaled2 = hwb_rounding_divide_by_pot(hwb_saturating_rounding_doubling_high_mul(shifted2, p->input2_multiplier),
                                                 -p->input2_shift);
    int32_t raw = hwb_rounding_divide_by_pot(hwb_saturating_rounding_doubling_high_mul(scaled1 + scaled2, p->output_multiplier),
                                             -p->output_shift) + output_offset;
    return (int8_t)hwb_clamp_i32(raw, p->activation_min, p->activation_max);
}

hwb_status hwb_add_s8(const hwb_op_args *args) {
    if (args->input_count != 2 || args->output_count != 1 || args->params_size != sizeof(struct add_params))
        return HWB_ERR_PARAMS;
    const hwb_tensor *in1 = &args->inputs[0], *in2 = &args->inputs[1], *out = &args->outputs[0];
    if (in1->data == 0 || in2->data == 0 || out->data == 0) return HWB_ERR_SHAPE;
    if (in1->dtype != HWB_INT8 || in2->dtype != HWB_INT8 || out->dtype != HWB_INT8) return HWB_ERR_SHAPE;
    if (!int8_zero_point(in1) || !int8_zero_point(in2) || !int8_zero_point(out)) return HWB_ERR_PARAMS;
    struct broadcast bc;
    if (broadcast_shapes(in1, in2, out, &bc) != HWB_OK) return HWB_ERR_SHAPE;
    const struct add_params *p = (const struct add_params *)args->params;
    if (p->left_shift < 0 || p->left_shift > 20 || p->input1_shift > 0 || p->input1_shift < -31 ||
        p->input2_shift > 0 || p->input2_shift < -31 || p->output_shift > 0 || p->output_shift < -31 ||
        p->input1_multiplier < 0 || p->input2_multiplier < 0 || p->output_multiplier < 0 ||
        p->activation_min < -128 || p->activation_min > p->activation_max || p->activation_max > 127)
        return HWB_ERR_PARAMS;

    const int8_t *a = (const int8_t *)in1->data, *b = (const int8_t *)in2->data;
    int8_t *o = (int8_t *)out->data;
    int32_t off1 = -in1->zero_point, off2 = -in2->zero_point, off_out = out->zero_point;
    int32_t n = hwb_flat_size(out);
    if (hwb_flat_size(in1) == n && hwb_flat_size(in2) == n) { /* no broadcast: one flat loop */
        for (int32_t i = 0; i < n; i++) o[i] = add_one(a[i], b[i], off1, off2, off_out, p);
        return HWB_OK;
    }
    int32_t i = 0;
    for (int32_t i0 = 0; i0 < bc.dims[0]; i0++)
        for (int32_t i1 = 0; i1 < bc.dims[1]; i1++)
            for (int32_t i2 = 0; i2 < bc.dims[2]; i2++) {
                const int8_t *ra = a + i0 * bc.stride1[0] + i1 * bc.stride1[1] + i2 * bc.stride1[2];
                const int8_t *rb = b + i0 * bc.stride2[0] + i1 * bc.stride2[1] + i2 * bc.stride2[2];
                for (int32_t i3 = 0; i3 < bc.dims[3]; i3++, i++)
                    o[i] = add_one(ra[i3 * bc.stride1[3]], rb[i3 * bc.stride2[3]], off1, off2, off_out, p);
            }
    return HWB_OK;
}
