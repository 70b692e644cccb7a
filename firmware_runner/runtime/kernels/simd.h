/* Packed 16-bit arithmetic for the fast kernel paths: with the DSP extension (Cortex-M4, M7, M33) the
 * SXTB16 and SMLAD family of instructions, elsewhere (Cortex-M0/M3, the host build) the same results in
 * portable C. A 32-bit word holds two int16 halves, low and high; products and sums wrap modulo 2^32 as
 * the instructions do (TFLite's int32 accumulators wrap the same way in practice). */
#ifndef HWB_SIMD_H
#define HWB_SIMD_H

#include <stdint.h>
#include <string.h>

#include "../hwb_quant.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* Four bytes from any address (one LDR where unaligned loads are allowed). */
static inline uint32_t hwb_load_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}


#if defined(__ARM_FEATURE_DSP)

/* Bytes 0 and 2 of x, sign-extended into the low and high halves. */
static inline uint32_t hwb_sxtb16(uint32_t x) { return __sxtb16(x); }

/* Bytes 1 and 3 of x, sign-extended into the low and high halves. */
static inline uint32_t hwb_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* acc + a.low * b.low + a.high * b.high */
static inline int32_t hwb_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad(a, b, acc); }

/* acc + a.low * b.low */
static inline int32_t hwb_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb(a, b, acc); }

/* acc + a.high * b.high */
static inline int32_t hwb_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt(a, b, acc); }

#else

/* The low (high = 0) or high half of x as a signed value: sign extension without implementation-defined casts. */
static inline int32_t hwb_half(uint32_t x, int high) {
    const uint32_t h = (high ? x >> 16 : x) & 0xFFFFu;
    return (int32_t)h - (int32_t)((h & 0x8000u) << 1);
}

/* Byte k of x as a signed value. */
static inline int32_t hwb_byte(uint32_t x, int k) {
    const uint32_t b = (x >> (8 * k)) & 0xFFu;
    return (int32_t)b - (int32_t)((b & 0x80u) << 1);
}

static inline uint32_t hwb_pack16(int32_t low, int32_t high) {
    return ((uint32_t)low & 0xFFFFu) | (((uint32_t)high & 0xFFFFu) << 16);
}

static inline uint32_t hwb_sxtb16(uint32_t x) { return hwb_pack16(hwb_byte(x, 0), hwb_byte(x, 2)); }
static inline uint32_t hwb_sxtb16_ror8(uint32_t x) { return hwb_pack16(hwb_byte(x, 1), hwb_byte(x, 3)); }

static inline int32_t hwb_wrap_add(int32_t acc, int32_t product) {
    return hwb_wrap_i32((uint32_t)acc + (uint32_t)product);
}

static inline int32_t hwb_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return hwb_wrap_add(hwb_wrap_add(acc, hwb_half(a, 0) * hwb_half(b, 0)), hwb_half(a, 1) * hwb_half(b, 1));
}
static inline int32_t hwb_smlabb(uint32_t a, uint32_t b, int32_t acc) {
    return hwb_wrap_add(acc, hwb_half(a, 0) * hwb_half(b, 0));
}
static inline int32_t hwb_smlatt(uint32_t a, uint32_t b, int32_t acc) {
    return hwb_wrap_add(acc, hwb_half(a, 1) * hwb_half(b, 1));
}

#endif

#endif
