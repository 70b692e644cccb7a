/* Fixed-point arithmetic exactly as TFLite's reference kernels do it (gemmlowp semantics):
 * a real multiplier M is stored as a Q31 `multiplier` and a power-of-two `shift`. */
#ifndef HWB_QUANT_H
#define HWB_QUANT_H

#include <stdint.h>

/* Compiler hints for hot loops (no effect on results): a branch usually taken; a shared loop a kernel
 * calls with its per-element function, inlined so that the function is known and inlined too rather
 * than called for each element; a loop kept out of line so that it gets registers of its own. */
#if defined(__GNUC__)
#define HWB_LIKELY(condition) __builtin_expect(!!(condition), 1)
#define HWB_ALWAYS_INLINE __attribute__((always_inline)) inline
#define HWB_NOINLINE __attribute__((noinline))
#else
#define HWB_LIKELY(condition) (condition)
#define HWB_ALWAYS_INLINE inline
#define HWB_NOINLINE
#endif

/* Shifts a plan may carry: TFLite's multipliers stay within these. */
static inline int hwb_valid_shift(int32_t shift) { return shift >= -31 && shift <= 30; }

/* A value an int8 holds: a zero point, a padding value. */
static inline int hwb_is_int8(int32_t v) { return v >= -128 && v <= 127; }

/* A fused activation's clamp in int8 units: -128 <= min <= max <= 127. */
static inline int hwb_valid_act_s8(int32_t min, int32_t max) { return min >= -128 && min <= max && max <= 127; }

/* u modulo 2^32 as an int32, what TFLite's wrapping int32 arithmetic and static_cast<int32_t> give in
 * practice, spelled without implementation-defined conversions. */
static inline int32_t hwb_wrap_i32(uint32_t u) {
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)(u - 2147483648u) - INT32_MAX - 1;
}

/* x limited to the int8 range: one SSAT where the core has it. */
static inline int32_t hwb_saturate_s8(int32_t x) {
#if defined(__ARM_FEATURE_SAT)
    __asm__("ssat %0, #8, %0" : "+r"(x));
    return x;
#else
    return x < -128 ? -128 : (x > 127 ? 127 : x);
#endif
}

/* x limited to [lo, hi]. On a Thumb-2 core (M3 and up) in two IT blocks, never a branch: gcc turns
 * some spellings of this clamp into branches, and a layer's instruction count then depends on how many
 * of its outputs are clamped (an instruction an IT block skips still counts, one a branch jumps over
 * does not), which the latency models cannot see. */
static inline int32_t hwb_clamp_i32(int32_t x, int32_t lo, int32_t hi) {
#if defined(__thumb2__)
    __asm__("cmp %[x], %[lo]\n\t"
            "it lt\n\t"
            "movlt %[x], %[lo]\n\t"
            "cmp %[x], %[hi]\n\t"
            "it gt\n\t"
            "movgt %[x], %[hi]"
            : [x] "+r"(x)
            : [lo] "r"(lo), [hi] "r"(hi)
            : "cc");
    return x;
#else
    return x < lo ? lo : (x > hi ? hi : x);
#endif
}

/* round(a * b / 2^31), halves away from zero, saturating the single overflow case. */
static inline int32_t hwb_saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    return (int32_t)((ab + nudge) / (1LL << 31)); /* C99 division truncates toward zero, as TFLite relies on */
}

/* x / 2^exponent rounded to nearest, halves away from zero; exponent in 0..31. */
static inline int32_t hwb_rounding_divide_by_pot(int32_t x, int32_t exponent) {
    int32_t mask = (int32_t)((1LL << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0); /* >> of a negative is arithmetic on gcc */
}

/* x * 2^left_shift in 32 bits, wrapping as TFLite's int32 arithmetic does in practice. */
static inline int32_t hwb_shift_left_wrap(int32_t x, int32_t left_shift) {
    return (int32_t)((uint32_t)x << left_shift);
}

/* TFLite's MultiplyByQuantizedMultiplier (double rounding): x * M for M = multiplier * 2^(shift - 31). */
static inline int32_t hwb_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift) {
    int32_t left_shift = shift > 0 ? shift : 0;
    int32_t right_shift = shift > 0 ? 0 : -shift;
    return hwb_rounding_divide_by_pot(
        hwb_saturating_rounding_doubling_high_mul(hwb_shift_left_wrap(x, left_shift), multiplier), right_shift);
}

/* hwb_multiply_by_quantized_multiplier for multiplier >= 0, equal for every x and shift, with its two
 * roundings folded into one: with X = x * 2^left (wrapping) and P = X * multiplier, the doubling
 * high multiply is floor((P + 2^30) / 2^31) (TFLite's nudge rounds halves up for either sign), and
 * dividing that v by 2^right, halves away from zero, is floor((v + 2^(right-1) - [v < 0]) / 2^right).
 * Nested floors merge: floor((P + 2^30 + 2^(30+right) - 2^31 [X < 0]) / 2^(31+right)) for right >= 1,
 * where [v < 0] may be replaced by [X < 0] (a negative X with v = 0 gives 0 either way). With
 * A = P + 2^30 for X >= 0 and P - 2^30 for X < 0 (one multiply-accumulate), that is the high word of
 * A + 2^31 for right 1, and (high word of A + 2^(right-2)) >> (right-1) from 2 on, which equals
 * ((high word >> (right-2)) + 1) >> 1.
 * tests/test_requantize.py compares the two on millions of cases. */
/* The high word of x * multiplier + 2^30 (x >= 0) or - 2^30 (x < 0): one multiply-accumulate. */
static inline int32_t hwb_rounded_high(int32_t x, int32_t multiplier) {
#if defined(__thumb2__)
    int32_t low, high;
    __asm__("asr %[high], %[x], #31\n\t"
            "lsl %[low], %[high], #31\n\t"
            "orr %[low], %[low], #0x40000000\n\t"
            "smlal %[low], %[high], %[x], %[m]"
            : [low] "=&r"(low), [high] "=&r"(high)
            : [x] "r"(x), [m] "r"(multiplier));
    return high;
#else
    return (int32_t)(((int64_t)x * multiplier + (x < 0 ? -(1LL << 30) : (1LL << 30))) >> 32);
#endif
}


static inline int32_t hwb_requantize(int32_t x, int32_t multiplier, int32_t shift) {
    if (HWB_LIKELY(shift <= -2)) /* the usual case: (h + 2^(k-1)) >> k, as ((h >> (k-1)) + 1) >> 1 */
        return ((hwb_rounded_high(x, multiplier) >> -(shift + 2)) + 1) >> 1;
    if (shift >= 0) {
        const int64_t product = (int64_t)hwb_shift_left_wrap(x, shift) * multiplier; /* |.| < 2^62 */
        return (int32_t)((product + (1LL << 30)) >> 31); /* >> of a negative is arithmetic on gcc */
    }
    const int64_t a = (int64_t)x * multiplier + (x < 0 ? -(1LL << 30) : (1LL << 30));
    return (int32_t)((a + (1LL << 31)) >> 32);
}

/* Bit length of a nonzero x: the index of its highest set bit plus one (one CLZ, no branch, on Arm). */
static inline int32_t hwb_bit_length32(uint32_t x) {
#if defined(__GNUC__)
    return 32 - __builtin_clz(x);
#else
    int32_t n = 0;
    while (x) {
        n++;
        x >>= 1;
    }
    return n;
#endif
}

/* Bit length of a nonzero x: the index of its highest set bit plus one. */
static inline int32_t hwb_bit_length(uint64_t x) {
    const uint32_t high = (uint32_t)(x >> 32);
    return high ? 32 + hwb_bit_length32(high) : hwb_bit_length32((uint32_t)x);
}

/* A double-precision scale as the plan carries it: scale = mantissa * 2^exponent, mantissa 0 or in
 * [2^52, 2^53) (the double's 53 significant bits), split in two 32-bit words. */
typedef struct {
    uint32_t mantissa_low, mantissa_high;
    int32_t exponent;
} hwb_double_scale;

/* The exponents a plan's double scale may have: every product of float32 scales lies far inside. */
static inline int hwb_valid_double_scale(const hwb_double_scale *s) {
    if (s->mantissa_low == 0 && s->mantissa_high == 0) return 1;
    return s->mantissa_high >> 20 == 1 && s->exponent >= -1200 && s->exponent <= 1200;
}

/* static_cast<int32_t>(std::round(double(acc) * scale)) as LiteRT's reference FULLY_CONNECTED computes
 * it (x86, SSE2), in 64-bit integer arithmetic: no double-precision hardware needed. The exact product
 * P = |acc| * mantissa (< 2^84) is rounded to 53 significant bits, to nearest with ties to even, as the
 * double multiplication rounds; that value times 2^exponent is rounded to an integer, halves away
 * from zero, as std::round does; a result outside int32 becomes INT32_MIN, as the x86 conversion gives.
 *
 * With `drop` the bits below the 53 kept and t = -exponent, the two roundings fold into one: nested
 * floors give |result| = floor((P + 2^(drop-1) + 2^(t-1)) / 2^t) for every result within int32 (ties to
 * even never matter there: the integer rounding's halfway points are then even multiples of the 53-bit
 * step, so a tie rounded down or up falls on the same side of them). Scales of 2^-33 to 2^-85 times
 * the mantissa (every FULLY_CONNECTED of an int8 model) take that short way; any other goes the long
 * way. tests/test_requantize.py compares both with the double formula on millions of cases, ties
 * included. */
static inline int32_t hwb_round_scaled(int32_t acc, const hwb_double_scale *s) {
    const int32_t t = -s->exponent;
    const uint32_t sign = 0u - (uint32_t)(acc < 0);       /* all ones for a negative acc */
    const uint32_t a = ((uint32_t)acc ^ sign) - sign;     /* |acc| <= 2^31 */
    uint64_t low = (uint64_t)a * s->mantissa_low;                 /* < 2^63 */
    uint64_t high = (uint64_t)a * s->mantissa_high + (low >> 32); /* P >> 32: 0 or in [2^20, 2^52) */
    const uint32_t low_word = (uint32_t)low;
    if (HWB_LIKELY(t >= 33 && t <= 85)) {
        /* Without a data-dependent branch, so that a layer's instruction count does not depend on its
         * values: bits 20..51 of P >> 32 give the 53 bits' position (drop 0..31; an acc or mantissa of
         * 0 makes P = 0 and the result 0 whatever drop is), and the sign and the INT32_MIN of an
         * overflow are applied with masks. */
        const int32_t drop = hwb_bit_length32((uint32_t)(high >> 20) | 1u) - 1;
        /* (P + 2^(drop-1) + 2^(t-1)) / 2^t: the low word's carry, then the high part alone. */
        const uint64_t carry = ((uint64_t)low_word + ((1u << drop) >> 1)) >> 32; /* 0 or 1 */
        const uint64_t magnitude = (high + carry + (1ull << (t - 33))) >> (t - 32); /* < 2^51 */
        const uint32_t over_high = (uint32_t)(magnitude >> 31); /* nonzero: outside int32, INT32_MIN */
        const uint32_t over = 0u - ((over_high | (0u - over_high)) >> 31);
        const uint32_t r = ((uint32_t)magnitude & ~over) | (0x80000000u & over);
        return hwb_wrap_i32((r ^ sign) - sign);
    }
    if (acc == 0 || (s->mantissa_low == 0 && s->mantissa_high == 0)) return 0;
    const int32_t drop = hwb_bit_length(high) - 21; /* bits below the 53 kept: 0..31 */
    uint64_t magnitude;
    const uint32_t below = low_word & ((1u << drop) - 1u);
    uint64_t kept = (high << (32 - drop)) | (low_word >> drop); /* in [2^52, 2^53) */
    if (drop > 0) {
        uint32_t half = 1u << (drop - 1);
        if (below > half || (below == half && (kept & 1u))) kept++; /* may reach 2^53: still exact */
    }
    /* |value| = kept * 2^(drop - t), with kept >= 2^52: only a negative power stays in int32. */
    const int32_t right = t - drop;
    if (right <= 0) return INT32_MIN;
    if (right > 54) {
        magnitude = 0; /* kept / 2^right < 1/2 */
    } else {
        uint64_t fraction = kept & ((1ull << right) - 1u);
        magnitude = (kept >> right) + (fraction >= 1ull << (right - 1) ? 1u : 0u);
    }
    if (acc > 0) return magnitude <= (uint64_t)INT32_MAX ? (int32_t)magnitude : INT32_MIN;
    return magnitude < 2147483648ull ? -(int32_t)magnitude : INT32_MIN;
}

#endif
