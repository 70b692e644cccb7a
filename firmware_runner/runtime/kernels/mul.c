/* STUB: to be replaced by the kernel. */
#include "../hwb_ops.h"

hwb_status hwb_mul_s8(const hwb_op_args *args) {
    (void)args;
    return HWB_ERR_OP;
}
