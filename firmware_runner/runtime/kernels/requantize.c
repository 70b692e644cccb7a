/* The fast paths' requantization of a run of output channels (CONV_2D, DEPTHWISE_CONV_2D; see conv.h):
 * each output's sum plus its channel's bias, requantized as TFLite's per-channel convolutions do
 * (hwb_conv_requantize). */
#include "conv.h"

void hwb_fast_requantize_channels(const int32_t *sums, const hwb_channel_quant *q, int32_t count,
                                  const hwb_output_quant *o, int8_t *out) {
    const int32_t zp = o->offset, min = o->min, max = o->max;
    const int8_t *end = out + count;
    do {
        *out++ = hwb_conv_requantize((uint32_t)*sums++ + (uint32_t)q->bias, q->multiplier, q->shift, zp, min, max);
        q++;
    } while (out != end);
}

