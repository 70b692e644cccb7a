/* RESHAPE and SQUEEZE: the same bytes under another shape. The arena planner aliases the output
 * to the input, so usually there is nothing to do; a plan that does not alias them gets a copy. */
#include <string.h>

#include "../hwb_ops.h"

hwb_status hwb_reshape_check(const hwb_op_args *args) {
    if (!hwb_args_match(args, 1, 1, 0)) return HWB_ERR_PARAMS;
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    return in->data == 0 || in->dtype != out->dtype || in->nbytes != out->nbytes ? HWB_ERR_SHAPE : HWB_OK;
}

hwb_status hwb_reshape(const hwb_op_args *args) {
    const hwb_tensor *in = &args->inputs[0], *out = &args->outputs[0];
    if (in->data != out->data) memmove(out->data, in->data, out->nbytes);
    return HWB_OK;
}
