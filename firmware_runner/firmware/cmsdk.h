/* The Arm CMSDK APB UART and APB timer (Arm Cortex-M System Design Kit Technical Reference Manual,
 * DDI 0479, its APB UART and APB timer sections), the peripherals of Arm's MPS2 and MPS3 FPGA
 * images, as QEMU models them (hw/char/cmsdk-apb-uart.c, hw/timer/cmsdk-apb-timer.c). */
#ifndef HWB_CMSDK_H
#define HWB_CMSDK_H

#include <stdint.h>

#define CMSDK_REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))

/* UART: DATA 0x00, STATE 0x04 (bit 0: TX buffer full), CTRL 0x08 (bit 0: TX enable),
 * BAUDDIV 0x10. TX must be enabled before the first DATA write: QEMU otherwise keeps the TX-full
 * bit set for good. */
static inline void cmsdk_uart_init(uint32_t base) {
    CMSDK_REG(base, 0x10) = 16; /* the smallest divider the UART accepts */
    CMSDK_REG(base, 0x08) = 1;
}

static inline void cmsdk_uart_write(uint32_t base, const char *text, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        while (CMSDK_REG(base, 0x04) & 1u) {
        }
        CMSDK_REG(base, 0x00) = (uint8_t)text[i];
    }
}

/* Timer: a 32-bit down-counter at the peripheral clock. CTRL 0x00 (bit 0: enable), VALUE 0x04,
 * RELOAD 0x08. */
static inline void cmsdk_timer_start(uint32_t base) {
    CMSDK_REG(base, 0x08) = 0xFFFFFFFFu;
    CMSDK_REG(base, 0x04) = 0xFFFFFFFFu;
    CMSDK_REG(base, 0x00) = 1; /* enable, no interrupt */
}

static inline uint32_t cmsdk_timer_ticks(uint32_t base) { return 0xFFFFFFFFu - CMSDK_REG(base, 0x04); }

#endif
