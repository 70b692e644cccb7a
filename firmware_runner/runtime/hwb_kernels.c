/* The kernel table hwb_load and hwb_invoke look each op code up in: every kernel of HWB_OPS. A
 * folder written by `hwbench export` has its own table in its place, with only the kernels its model
 * uses, so that only their sources are needed. */
#include "hwb_ops.h"

#define HWB_KERNEL_ENTRY(code, name, check, run) [code] = {check, run},
const hwb_kernel hwb_kernels[HWB_OP_END] = {HWB_OPS(HWB_KERNEL_ENTRY)};
