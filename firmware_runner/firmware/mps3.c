/* Arm MPS3 FPGA image AN547 (Corstone SSE-300 with a Cortex-M55) as QEMU emulates it
 * (hw/arm/mps2-tz.c, mps3-an547): the CMSDK UART whose base the board file gives for output,
 * semihosting to stop QEMU with an exit code. The image has no CMSDK TIMER0; it counts with the
 * SSE-300's system counter (SSE-300 TRM, Arm 101773, "System counter"; AN547 memory map), a 64-bit
 * up-counter at the 32 MHz system clock: CNTCR (bit 0: enable) in the secure control frame at
 * 0x58100000, the count's low word CNTCVL in the read frame at 0x58101000. */
#include "board.h"
#include "cmsdk.h"
#include "semihosting.h"

#define CNTCR (*(volatile uint32_t *)0x58100000u)
#define CNTCVL (*(volatile uint32_t *)0x58101000u)

void board_init(void) {
    cmsdk_uart_init(HWB_UART_BASE);
    CNTCR = 1u;
}

void board_write(const char *text, uint32_t length) { cmsdk_uart_write(HWB_UART_BASE, text, length); }

uint32_t board_ticks(void) { return CNTCVL; }

void board_exit(int code) { semihosting_exit(code); }
