/* Checks the runtime's requantization shortcuts (firmware_runner/runtime/hwb_quant.h) against what they
 * stand for, on `count` seeded random cases and a set of edge cases; built and run by
 * tests/test_requantize.py. Prints the number of cases checked, or the first difference and exits 1.
 *
 *   requantize_driver double COUNT SEED   hwb_round_scaled (integers only) against the double-precision
 *                                         formula of LiteRT's reference FULLY_CONNECTED
 *   requantize_driver fixed COUNT SEED    hwb_requantize against TFLite's MultiplyByQuantizedMultiplier
 *                                         (hwb_multiply_by_quantized_multiplier) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwb_quant.h"

/* static_cast<int32_t>(std::round(v)) as compiled for x86: the ground truth. */
static int32_t reference_round(double v) {
    if (!(v > -2147483648.5 && v < 2147483647.5)) return INT32_MIN;
    return (int32_t)round(v);
}

/* The plan compiler's decomposition (quantization.double_scale), redone here with frexp. */
static hwb_double_scale decompose(double scale) {
    hwb_double_scale s = {0, 0, 0};
    if (scale == 0.0) return s;
    int exponent;
    double fraction = frexp(scale, &exponent);
    uint64_t mantissa = (uint64_t)ldexp(fraction, 53);
    s.mantissa_low = (uint32_t)mantissa;
    s.mantissa_high = (uint32_t)(mantissa >> 32);
    s.exponent = exponent - 53;
    return s;
}

static uint64_t state;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A positive float32 scale with a random significand and an exponent in [lo, hi]. */
static float random_scale(int lo, int hi) {
    return ldexpf(1.0f + (float)(next() >> 41) / 8388608.0f, lo + (int)(next() % (uint64_t)(hi - lo + 1)));
}

static int32_t random_acc(void) {
    switch (next() % 4) {
        case 0: return (int32_t)(uint32_t)next();                   /* anywhere in int32 */
        case 1: return (int32_t)(next() % 200001) - 100000;         /* what int8 layers reach */
        case 2: return (int32_t)(next() % 2001) - 1000;
        default: return (int32_t)(next() >> (33 + next() % 31)) * (next() & 1 ? 1 : -1);
    }
}

/* A case whose exact product lies halfway between two doubles, one of them a half-integer: the
 * 53-bit rounding's ties-to-even decides the result. acc is odd, so the product needs 54 bits. */
static void tie_case(int32_t *acc, double *scale) {
    for (;;) {
        uint64_t a = 3 + 2 * (next() % 60);              /* odd */
        uint64_t h = 2 * (next() % (1u << 20)) + 1;       /* the half-integer h / 2 */
        int32_t j = 53 - hwb_bit_length(h);
        uint64_t q = h << j;                              /* in [2^52, 2^53): h / 2 = q * 2^(-j-1) */
        uint64_t product = 2 * q + (next() & 1 ? 1 : (uint64_t)-1); /* a tie between two neighbours of q */
        if (product % a) continue;
        *acc = (int32_t)a * (next() & 1 ? 1 : -1);
        *scale = ldexp((double)(product / a), -j - 2);    /* acc * scale = product * 2^(-j-2) exactly */
        return;
    }
}

static long checked;
static int check(int32_t acc, double scale) {
    hwb_double_scale s = decompose(scale);
    int32_t expected = reference_round((double)acc * scale), got = hwb_round_scaled(acc, &s);
    checked++;
    if (expected == got) return 1;
    printf("acc %ld scale %.17g: double formula %ld, integers %ld\n", (long)acc, scale, (long)expected, (long)got);
    return 0;
}

/* One random multiplier: 0, TFLite's range [2^30, 2^31), or anything non-negative. */
static int32_t random_multiplier(void) {
    switch (next() % 4) {
        case 0: return (int32_t)(next() % 3) + (next() & 1 ? 0 : INT32_MAX - 2);
        case 1: return (int32_t)(next() >> 33);
        default: return (int32_t)((1u << 30) + (uint32_t)(next() >> 34));
    }
}

static int check_fixed(long count) {
    const int32_t edges[] = {0, 1, -1, 2, -2, 127, -128, 255, -255, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 30};
    for (long n = 0; n < count; n++) {
        int32_t x = n < 13 * 62 ? edges[n % 13] : random_acc();
        int32_t shift = n < 13 * 62 ? (int32_t)(n / 13) - 31 : (int32_t)(next() % 62) - 31;
        int32_t m = random_multiplier();
        int32_t expected = hwb_multiply_by_quantized_multiplier(x, m, shift), got = hwb_requantize(x, m, shift);
        checked++;
        if (expected != got) {
            printf("x %ld multiplier %ld shift %ld: TFLite %ld, folded %ld\n", (long)x, (long)m, (long)shift,
                   (long)expected, (long)got);
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv) {
    int fixed = argc > 1 && strcmp(argv[1], "fixed") == 0;
    long count = argc > 2 ? atol(argv[2]) : 1000000;
    state = argc > 3 ? strtoull(argv[3], 0, 10) : 1;
    if (fixed) {
        if (!check_fixed(count)) return 1;
        printf("%ld\n", checked);
        return 0;
    }
    const int32_t edges[] = {0, 1, -1, 2, -2, 3, 127, -128, 255, INT32_MAX, INT32_MIN, INT32_MIN + 1, 1 << 30, -(1 << 30)};
    const double scales[] = {0.0, 1.0, 0.5, 0.25, 2.0, 1.5, 0.75, 1e-10, 3e-3, 0.999999999, 1.0000001, 65536.0,
                             4294967296.0, 2.3283064365386963e-10, 4.656612873077393e-10};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        for (size_t j = 0; j < sizeof scales / sizeof scales[0]; j++)
            if (!check(edges[i], scales[j])) return 1;
    for (long n = 0; n < count; n++) {
        int32_t acc = random_acc();
        double scale;
        switch (n % 5) {
            case 0: /* what the reference computes from three float32 scales */
                scale = (double)random_scale(-30, 2) * (double)random_scale(-20, 0) / (double)random_scale(-30, 2);
                break;
            case 1: /* the whole range three float32 scales can give */
                scale = (double)random_scale(-126, 127) * (double)random_scale(-126, 127) / (double)random_scale(-126, 127);
                break;
            case 2: { /* a product near a half-integer: the 53-bit rounding decides the result */
                if (acc == 0) acc = 7;
                double target = (double)(int32_t)(next() % 4001 - 2000) + 0.5;
                scale = fabs(target / (double)acc);
                uint64_t bits;
                memcpy(&bits, &scale, sizeof bits);
                bits += (uint64_t)(next() % 9) - 4; /* a few ulps either side */
                memcpy(&scale, &bits, sizeof scale);
                break;
            }
            case 3:
                tie_case(&acc, &scale);
                break;
            default: { /* any positive double of moderate exponent */
                uint64_t bits = (next() >> 12) | ((uint64_t)(1023 - 60 + next() % 80) << 52);
                memcpy(&scale, &bits, sizeof scale);
            }
        }
        if (!check(acc, scale)) return 1;
    }
    printf("%ld\n", checked);
    return 0;
}
