/* The fast paths' requantization of a run of output channels (CONV_2D, DEPTHWISE_CONV_2D; see conv.h):
 * each output's sum plus its channel's bias, requantized as TFLite's per-channel convolutions do
 * (hwb_conv_requantize). */
#include "conv.h"

/* The loop for a clamp to the whole int8 range (`full_range`, known where it is inlined) or to any other. */
static HWB_ALWAYS_INLINE void requantize_run(const int32_t *sums, const hwb_channel_quant *q, int32_t count,
                                             const hwb_output_quant *o, int8_t *out, int full_range) {
    const int32_t zp = o->offset, min = o->min, max = o->max;
    const int8_t *end = out + count;
    do {
        const int32_t v = hwb_conv_rescale((uint32_t)*sums++ + (uint32_t)q->bias, q->multiplier, q->shift, zp);
        *out++ = (int8_t)(full_range ? hwb_saturate_s8(v) : hwb_clamp_i32(v, min, max));
        q++;
    } while (out != end);
}

void hwb_fast_requantize_channels(const int32_t *sums, const hwb_channel_quant *q, int32_t count,
                                  const hwb_output_quant *o, int8_t *out) {
    /* No fused activation, or a ReLU whose output zero point is -128 (what TFLite's converter gives),
     * clamps to the whole int8 range: one SSAT instead of two compares. */
    if (o->min == -128 && o->max == 127)
        requantize_run(sums, q, count, o, out, 1);
    else
        requantize_run(sums, q, count, o, out, 0);
}
