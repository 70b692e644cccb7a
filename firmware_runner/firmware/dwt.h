/* The cycle counter of Armv7-M and Armv8-M mainline cores, what real boards count with (Armv7-M
 * Architecture Reference Manual, DDI 0403, C1.8 "The Data Watchpoint and Trace unit"): DEMCR.TRCENA
 * powers the DWT, DWT_CTRL.CYCCNTENA starts CYCCNT. QEMU does not implement it (CYCCNT stays 0):
 * emulated boards count with a timer instead. */
#ifndef HWB_DWT_H
#define HWB_DWT_H

#include <stdint.h>

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)

static inline void dwt_start(void) {
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u; /* CYCCNTENA */
}

static inline uint32_t dwt_cycles(void) { return DWT_CYCCNT; }

#endif
