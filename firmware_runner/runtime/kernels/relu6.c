/* RELU6 on int8. TFLite runs RELU and RELU6 through the same QuantizedReluX: a requantization to
 * the output scale and a clamp. Only the clamp differs (act_max = min(127, zp + roundf(6 / scale))),
 * and the plan compiler computes it (lower_relu6 in firmware_runner/compiler/lowering/activations.py), so
 * the RELU kernel (relu.c, same parameter struct) does the work. */
#include "../hwb_ops.h"

hwb_status hwb_relu6_s8_check(const hwb_op_args *args) { return hwb_relu_s8_check(args); }

hwb_status hwb_relu6_s8(const hwb_op_args *args) { return hwb_relu_s8(args); }
