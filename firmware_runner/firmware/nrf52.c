/* Nordic nRF52840 (nRF52840 Product Specification v1.7), on the nRF52840 DK (PCA10056). Register
 * addresses and bits are from the product specification: its memory map ("Instantiation" table) and
 * the chapters "CLOCK — Clock control", "NVMC — Non-volatile memory controller", "GPIO — General
 * purpose input/output" and "UARTE — Universal asynchronous receiver/transmitter with EasyDMA".
 *
 * Clock: the CPU always runs at 64 MHz; the firmware starts the 32 MHz crystal oscillator (HFXO:
 * TASKS_HFCLKSTART, then EVENTS_HFCLKSTARTED, a bounded wait) so the UART's baud rate and the clock
 * are crystal-accurate, and turns the NVMC instruction cache on (ICACHECNF.CACHEEN) unless the board
 * file says icache = false. The first line (CLOCK) names the event that never came, and the board
 * then stops.
 *
 * UART: UARTE0 with TXD on P0.06 and RXD on P0.08, the interface MCU's virtual COM port (nRF52840
 * DK user guide, "Virtual COM port"); EasyDMA sends from RAM only, so each piece of a line is copied
 * into a RAM buffer first. Counting: DWT->CYCCNT. */
#include "board.h"
#include "clock.h"
#include "dwt.h"
#include "protocol.h"

#if HWB_EMULATED
#error "nrf52.c runs on real nRF52 chips (QEMU has no nRF52 machine)"
#endif
#if HWB_CLOCK_HZ != 64000000u
#error "the nRF52840's CPU runs at 64 MHz: clock = \"64 MHz\" in the board file"
#endif
#if defined(HWB_WAIT_STATES) || defined(HWB_ART) || defined(HWB_DCACHE) || defined(HWB_HSE_HZ)
#error "nrf52.c: the nRF52840 has no flash wait states, ART, data cache or HSE to set: only icache"
#endif
#if HWB_UART_BASE != 0x40002000u
#error "nrf52.c knows UARTE0; add the board's UART"
#endif
#ifndef HWB_ICACHE
#define HWB_ICACHE 1
#endif

#define REG(base, offset) (*(volatile uint32_t *)((base) + (offset)))

#define CLOCK_BASE 0x40000000u
#define CLOCK_TASKS_HFCLKSTART REG(CLOCK_BASE, 0x000)
#define CLOCK_EVENTS_HFCLKSTARTED REG(CLOCK_BASE, 0x100)

#define NVMC_ICACHECNF REG(0x4001E000u, 0x540)
#define NVMC_ICACHECNF_CACHEEN 1u

#define P0_BASE 0x50000000u
#define P0_OUTSET REG(P0_BASE, 0x508)
#define P0_DIRSET REG(P0_BASE, 0x518)
#define TX_PIN 6u
#define RX_PIN 8u

#define UARTE_STARTTX REG(HWB_UART_BASE, 0x008)
#define UARTE_EVENTS_ENDTX REG(HWB_UART_BASE, 0x120)
#define UARTE_ENABLE REG(HWB_UART_BASE, 0x500)
#define UARTE_PSEL_TXD REG(HWB_UART_BASE, 0x50C)
#define UARTE_PSEL_RXD REG(HWB_UART_BASE, 0x514)
#define UARTE_BAUDRATE REG(HWB_UART_BASE, 0x524)
#define UARTE_TXD_PTR REG(HWB_UART_BASE, 0x544)
#define UARTE_TXD_MAXCNT REG(HWB_UART_BASE, 0x548)
#define UARTE_CONFIG REG(HWB_UART_BASE, 0x56C)
#define UARTE_ENABLE_ON 8u
#if HWB_UART_BAUD == 115200
#define UARTE_BAUDRATE_VALUE 0x01D60000u /* the UARTE's value for 115200 baud (not the UART's) */
#else
#error "nrf52.c knows the BAUDRATE value of 115200 baud only"
#endif

static int uart_ok = 1; /* cleared when an ENDTX never came: the board then stays silent */

void board_init(void) {
    static int ready; /* the fault handler calls this again: set the clock up once */
    if (ready) return;
    ready = 1;
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    const char *failed = wait_for(&CLOCK_EVENTS_HFCLKSTARTED, 1u, 1u) ? 0 : "HFCLKSTARTED";
    NVMC_ICACHECNF = HWB_ICACHE ? NVMC_ICACHECNF_CACHEEN : 0u;

    P0_OUTSET = 1u << TX_PIN; /* TX idles high */
    P0_DIRSET = 1u << TX_PIN;
    UARTE_PSEL_TXD = TX_PIN;
    UARTE_PSEL_RXD = RX_PIN;
    UARTE_BAUDRATE = UARTE_BAUDRATE_VALUE;
    UARTE_CONFIG = 0; /* no parity, no flow control */
    UARTE_ENABLE = UARTE_ENABLE_ON;
    dwt_start();
    const hwb_setting settings[] = {{"icache", NVMC_ICACHECNF & NVMC_ICACHECNF_CACHEEN}};
    report_clock(HWB_CLOCK_HZ, failed, settings, 1);
}

void board_write(const char *text, uint32_t length) {
    static uint8_t buffer[64]; /* in RAM, where EasyDMA reads */
    while (length && uart_ok) {
        uint32_t n = length < sizeof buffer ? length : sizeof buffer;
        for (uint32_t i = 0; i < n; i++) buffer[i] = (uint8_t)text[i];
        UARTE_TXD_PTR = (uint32_t)(uintptr_t)buffer;
        UARTE_TXD_MAXCNT = n;
        UARTE_EVENTS_ENDTX = 0;
        UARTE_STARTTX = 1;
        uart_ok = wait_for(&UARTE_EVENTS_ENDTX, 1u, 1u);
        text += n;
        length -= n;
    }
}

uint32_t board_ticks(void) { return dwt_cycles(); }

void board_exit(int code) {
    (void)code; /* the host reads DONE or the error and resets the board */
    for (;;) {
    }
}
