/* Arm MPS2 FPGA images as QEMU emulates them (hw/arm/mps2.c: mps2-an385, -an386, -an500;
 * hw/arm/mps2-tz.c: mps2-an505): the CMSDK UART whose base the board file gives for output, CMSDK
 * TIMER0 for counting, semihosting to stop QEMU with an exit code.
 *
 * TIMER0 is the first peripheral of the region the UART is in: 0x40000000 beside UART0 at
 * 0x40004000 on AN385/AN386/AN500 (their application notes, "APB memory map"), and on the SSE-200
 * image AN505, whose firmware runs in the secure state, the secure alias 0x50000000 beside UART0's
 * 0x50200000 (AN505 and the SSE-200 TRM, "memory map"). It counts down at the system clock. */
#include "board.h"
#include "cmsdk.h"
#include "semihosting.h"

#define TIMER0_BASE (HWB_UART_BASE & 0xF0000000u)

void board_init(void) {
    cmsdk_uart_init(HWB_UART_BASE);
    cmsdk_timer_start(TIMER0_BASE);
}

void board_write(const char *text, uint32_t length) { cmsdk_uart_write(HWB_UART_BASE, text, length); }

uint32_t board_ticks(void) { return cmsdk_timer_ticks(TIMER0_BASE); }

void board_exit(int code) { semihosting_exit(code); }
