/* Nordic nRF51 series (the BBC micro:bit's nRF51822, Cortex-M0) as QEMU emulates it
 * (hw/arm/nrf51_soc.c, -M microbit): UART0 for output, TIMER0 for counting, semihosting to stop
 * QEMU with an exit code. Registers from the nRF51 Series Reference Manual v3.0, its UART and TIMER
 * chapters; the micro:bit's UART TX pin is P0.24 (micro:bit v1 schematic). */
#include "board.h"
#include "semihosting.h"

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))

/* UART0 at the board file's base (0x40002000). */
#define UART_STARTTX REG(HWB_UART_BASE, 0x008)
#define UART_TXDRDY REG(HWB_UART_BASE, 0x11C)
#define UART_ENABLE REG(HWB_UART_BASE, 0x500)
#define UART_PSELTXD REG(HWB_UART_BASE, 0x50C)
#define UART_TXD REG(HWB_UART_BASE, 0x51C)
#define UART_BAUDRATE REG(HWB_UART_BASE, 0x524)
#define UART_TX_PIN 24u
#if HWB_UART_BAUD == 115200
#define UART_BAUDRATE_VALUE 0x01D7E000u /* the manual's value for 115200 baud */
#else
#error "nrf51.c knows the BAUDRATE value of 115200 baud only"
#endif

/* TIMER0: a 32-bit up-counter at 16 MHz (PRESCALER 0), read by capturing it into CC[0]. */
#define TIMER0_BASE 0x40008000u
#define TIMER_START REG(TIMER0_BASE, 0x000)
#define TIMER_CAPTURE0 REG(TIMER0_BASE, 0x040)
#define TIMER_MODE REG(TIMER0_BASE, 0x504)
#define TIMER_BITMODE REG(TIMER0_BASE, 0x508)
#define TIMER_PRESCALER REG(TIMER0_BASE, 0x510)
#define TIMER_CC0 REG(TIMER0_BASE, 0x540)

void board_init(void) {
    UART_PSELTXD = UART_TX_PIN;
    UART_BAUDRATE = UART_BAUDRATE_VALUE;
    UART_ENABLE = 4u;  /* enabled; QEMU ignores STARTTX before this */
    UART_STARTTX = 1u;
    TIMER_MODE = 0u;   /* timer, not counter */
    TIMER_BITMODE = 3u; /* 32 bit */
    TIMER_PRESCALER = 0u;
    TIMER_START = 1u;
}

void board_write(const char *text, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        UART_TXDRDY = 0u;
        UART_TXD = (uint8_t)text[i];
        while (!UART_TXDRDY) {
        }
    }
}

uint32_t board_ticks(void) {
    TIMER_CAPTURE0 = 1u;
    return TIMER_CC0;
}

void board_exit(int code) { semihosting_exit(code); }
