/* Arm MPS2 FPGA images as QEMU emulates them (mps2-an386, mps2-an500): CMSDK APB UART for output,
 * CMSDK TIMER0 (a 32-bit down-counter at the 25 MHz system clock) for counting, semihosting
 * SYS_EXIT_EXTENDED to stop QEMU with an exit code. HWB_UART_BASE comes from the board file. */
#include "board.h"

#define REG(address) (*(volatile uint32_t *)(address))
#define UART_DATA REG(HWB_UART_BASE + 0x00)
#define UART_STATE REG(HWB_UART_BASE + 0x04)
#define UART_CTRL REG(HWB_UART_BASE + 0x08)
#define UART_BAUDDIV REG(HWB_UART_BASE + 0x10)
#define UART_TX_FULL 1u
#define TIMER0_BASE 0x40000000u
#define TIMER_CTRL REG(TIMER0_BASE + 0x00)
#define TIMER_VALUE REG(TIMER0_BASE + 0x04)
#define TIMER_RELOAD REG(TIMER0_BASE + 0x08)

void board_init(void) {
    UART_BAUDDIV = 16; /* the smallest divider the UART accepts */
    UART_CTRL = 1;     /* transmit enable */
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1; /* enable, no interrupt */
}

void board_write(const char *text, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        while (UART_STATE & UART_TX_FULL) {
        }
        UART_DATA = (uint8_t)text[i];
    }
}

uint32_t board_ticks(void) { return 0xFFFFFFFFu - TIMER_VALUE; }

void board_exit(int code) {
    /* ARM semihosting SYS_EXIT_EXTENDED: {ADP_Stopped_ApplicationExit, code}. */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}
