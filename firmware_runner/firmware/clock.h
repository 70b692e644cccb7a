/* What the ports that set a clock up share: every wait on a hardware ready bit is bounded, so a bit
 * that never comes (a missing crystal, an emulator without the clock tree) is reported by name in
 * the CLOCK line (report_clock, protocol.h) instead of hanging the board silently. */
#ifndef HWB_CLOCK_H
#define HWB_CLOCK_H

#include <stdint.h>

/* >= 0.2 s at 16 MHz: far beyond a PLL's lock time (< 1 ms) or a crystal's start-up (< 10 ms). */
#define READY_POLLS 1000000u

/* 1 once (*reg & mask) == value, 0 after READY_POLLS reads without it. */
static inline int wait_for(volatile uint32_t *reg, uint32_t mask, uint32_t value) {
    for (uint32_t i = 0; i < READY_POLLS; i++) {
        if ((*reg & mask) == value) return 1;
    }
    return 0;
}

#endif
