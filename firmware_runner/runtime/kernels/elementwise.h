/* What ADD, SUB and MUL (add.c, sub.c, mul.c) share: numpy/TFLite broadcasting of two int8 inputs
 * to the output, the operand checks and the loop that visits every output element; each kernel
 * supplies its parameters and the arithmetic of one element. The parameter struct of ADD and SUB,
 * which firmware_runner/compiler/lowering/elementwise.py packs in one function, is here too. */
#ifndef HWB_ELEMENTWISE_H
#define HWB_ELEMENTWISE_H

#include "../hwb_ops.h"
#include "../hwb_quant.h"

/* Packed by lower_add_sub in firmware_runner/compiler/lowering/elementwise.py, in this order. */
struct add_sub_params {
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

static inline int hwb_add_sub_params_ok(const struct add_sub_params *p) {
    return p->left_shift >= 0 && p->left_shift <= 20 && p->input1_shift <= 0 && p->input1_shift >= -31 &&
           p->input2_shift <= 0 && p->input2_shift >= -31 && p->output_shift <= 0 && p->output_shift >= -31 &&
           p->input1_multiplier >= 0 && p->input2_multiplier >= 0 && p->output_multiplier >= 0 &&
           hwb_valid_act_s8(p->activation_min, p->activation_max);
}

/* The shapes of both inputs and the output right-aligned to 4 dims; an input's stride is 0 along
 * a dim it broadcasts. */
struct hwb_broadcast {
    int32_t dims[4];
    int32_t stride1[4];
    int32_t stride2[4];
};

static inline void hwb_padded_dims(const hwb_tensor *t, int32_t dims[4]) {
    int32_t pad = 4 - t->rank;
    for (int32_t d = 0; d < 4; d++) dims[d] = d < pad ? 1 : t->dims[d - pad];
}

/* Numpy/TFLite broadcasting: per dim the inputs agree or one of them is 1, and the output has the
 * larger rank and the larger extent. */
static inline int hwb_broadcast_shapes(const hwb_tensor *a, const hwb_tensor *b, const hwb_tensor *out,
                                       struct hwb_broadcast *bc) {
    int32_t da[4], db[4], dout[4];
    if (a->rank > 4 || b->rank > 4 || out->rank != (a->rank > b->rank ? a->rank : b->rank)) return 0;
    hwb_padded_dims(a, da);
    hwb_padded_dims(b, db);
    hwb_padded_dims(out, dout);
    for (int32_t d = 0; d < 4; d++) {
        if (da[d] != db[d] && da[d] != 1 && db[d] != 1) return 0;
        if (dout[d] != (da[d] == 1 ? db[d] : da[d])) return 0;
        bc->dims[d] = dout[d];
    }
    int32_t sa = 1, sb = 1;
    for (int32_t d = 3; d >= 0; d--) {
        bc->stride1[d] = da[d] == 1 ? 0 : sa;
        bc->stride2[d] = db[d] == 1 ? 0 : sb;
        sa *= da[d];
        sb *= db[d];
    }
    return 1;
}

/* The operands of ADD, SUB and MUL: input 1, input 2, output, all int8 with int8 zero points, the
 * inputs broadcastable to the output; and a parameter struct of params_size bytes (its values are
 * the kernel's to check). */
static inline hwb_status hwb_broadcast_operands_s8(const hwb_op_args *args, uint32_t params_size) {
    if (!hwb_args_match(args, 2, 1, params_size)) return HWB_ERR_PARAMS;
    const hwb_tensor *in1 = &args->inputs[0], *in2 = &args->inputs[1], *out = &args->outputs[0];
    if (!hwb_is_s8(in1) || !hwb_is_s8(in2) || !hwb_is_s8(out)) return HWB_ERR_SHAPE;
    if (!hwb_is_int8(in1->zero_point) || !hwb_is_int8(in2->zero_point) || !hwb_is_int8(out->zero_point))
        return HWB_ERR_PARAMS;
    struct hwb_broadcast bc;
    return hwb_broadcast_shapes(in1, in2, out, &bc) ? HWB_OK : HWB_ERR_SHAPE;
}

/* ADD's and SUB's check: their operands and parameters. */
static inline hwb_status hwb_add_sub_check(const hwb_op_args *args) {
    hwb_status status = hwb_broadcast_operands_s8(args, sizeof(struct add_sub_params));
    if (status != HWB_OK) return status;
    return hwb_add_sub_params_ok((const struct add_sub_params *)args->params) ? HWB_OK : HWB_ERR_PARAMS;
}

/* One output element from the two inputs less their zero points (x - zp1, y - zp2), the output
 * zero point and the kernel's parameter struct. */
typedef int8_t (*hwb_binary_s8)(int32_t x, int32_t y, int32_t output_offset, const void *params);

/* Writes every output element, in order, once the operands are checked; `params` is the kernel's
 * parameter struct, best a local copy (int8 stores may alias the plan's, which would then be read
 * again for every element). The output may be planned on top of input 1 or input 2 (same size, no
 * broadcast): element i of both inputs is read before element i is written. */
static HWB_ALWAYS_INLINE hwb_status hwb_broadcast_s8(const hwb_op_args *args, hwb_binary_s8 op, const void *params) {
    const hwb_tensor *in1 = &args->inputs[0], *in2 = &args->inputs[1], *out = &args->outputs[0];
    const int8_t *a = (const int8_t *)in1->data, *b = (const int8_t *)in2->data;
    int8_t *o = (int8_t *)out->data;
    int32_t off1 = -in1->zero_point, off2 = -in2->zero_point, off_out = out->zero_point;
    int32_t n = hwb_flat_size(out);
    if (hwb_flat_size(in1) == n && hwb_flat_size(in2) == n) { /* no broadcast: one flat loop */
        for (int32_t i = 0; i < n; i++) o[i] = op(a[i] + off1, b[i] + off2, off_out, params);
        return HWB_OK;
    }
    struct hwb_broadcast broadcast, *bc = &broadcast;
    hwb_broadcast_shapes(in1, in2, out, bc); /* the check has seen them broadcast */
    int32_t i = 0;
    for (int32_t i0 = 0; i0 < bc->dims[0]; i0++)
        for (int32_t i1 = 0; i1 < bc->dims[1]; i1++)
            for (int32_t i2 = 0; i2 < bc->dims[2]; i2++) {
                const int8_t *ra = a + i0 * bc->stride1[0] + i1 * bc->stride1[1] + i2 * bc->stride1[2];
                const int8_t *rb = b + i0 * bc->stride2[0] + i1 * bc->stride2[1] + i2 * bc->stride2[2];
                for (int32_t i3 = 0; i3 < bc->dims[3]; i3++, i++)
                    o[i] = op(ra[i3 * bc->stride1[3]] + off1, rb[i3 * bc->stride2[3]] + off2, off_out, params);
            }
    return HWB_OK;
}

#endif
