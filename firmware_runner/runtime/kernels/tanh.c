/* TANH, int8: TFLite's reference kernel looks every input up in a 256-entry table that its
 * Prepare fills in float (tanhf(x) for each input value, rounded to the output quantization,
 * which the converter sets to scale 1/128, zero point 0). The plan compiler computes that table
 * on the host exactly as TFLite does (firmware_runner/compiler/lowering/exponential.py) and stores it as a
 * constant, so this kernel needs no float maths and no parameters: it is LOGISTIC's lookup
 * (logistic.c, the same operands) in this table.
 *
 * Operands: input (int8), table (int8[256], entry k for input value k - 128), output (int8, same
 * shape as the input). The output may share the input's buffer: each element is read before it
 * is written. */
#include "../hwb_ops.h"

hwb_status hwb_tanh_s8_check(const hwb_op_args *args) { return hwb_logistic_s8_check(args); }

hwb_status hwb_tanh_s8(const hwb_op_args *args) { return hwb_logistic_s8(args); }
