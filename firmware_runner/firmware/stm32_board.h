/* The board interface (board.h) the STM32 ports share, over what each family file defines before
 * including it: its clock tree (clock_setup, and RESET_CLOCK_HZ, the clock a set-up that failed
 * leaves the chip on), its UART's bus clock and pins (uart_connect), its USART's register layout
 * (UART_LAYOUT: USART_SR_DR or USART_ISR_TDR, stm32.h) and its flash interface (FLASH_ACR, its
 * LATENCY mask and ART bits), plus CACHE_SETTINGS where the core has L1 caches. Real chips count with
 * DWT->CYCCNT; on QEMU, where CYCCNT stays 0, the family's timer counts (qemu_timer_*) and
 * semihosting stops the emulator. */
#ifndef HWB_STM32_BOARD_H
#define HWB_STM32_BOARD_H

#include "board.h"
#include "dwt.h"
#include "protocol.h"
#include "semihosting.h"
#include "stm32.h"

/* NULL once the chip runs at HWB_CLOCK_HZ with the memory system the board file asks for, else the
 * name of the ready bit that never came. */
static const char *clock_setup(void);
/* Clocks the UART and puts it on its pins; returns its BRR for HWB_UART_BAUD with the core at core_hz. */
static uint32_t uart_connect(uint32_t core_hz);
#if HWB_EMULATED
static void qemu_timer_start(void);
static uint32_t qemu_timer_ticks(void);
#endif
#ifndef CACHE_SETTINGS
#define CACHE_SETTINGS /* a Cortex-M4: no L1 caches to report */
#endif

static const usart_layout uart_layout = UART_LAYOUT;

void board_init(void) {
    static int ready; /* the fault handler calls this again: set the clock up once */
    if (ready) return;
    ready = 1;
    const char *failed = clock_setup();
    const uint32_t core_hz = failed ? RESET_CLOCK_HZ : HWB_CLOCK_HZ;
    usart_start(&uart_layout, HWB_UART_BASE, uart_connect(core_hz));
#if HWB_EMULATED
    qemu_timer_start();
#else
    dwt_start();
#endif
    const hwb_setting settings[] = {{"wait_states", FLASH_ACR & FLASH_ACR_LATENCY_MASK},
                                    {"art", (FLASH_ACR & FLASH_ACR_ART) == FLASH_ACR_ART},
                                    CACHE_SETTINGS};
    report_clock(core_hz, failed, settings, sizeof settings / sizeof settings[0]);
}

void board_write(const char *text, uint32_t length) { usart_write(&uart_layout, HWB_UART_BASE, text, length); }

uint32_t board_ticks(void) {
#if HWB_EMULATED
    return qemu_timer_ticks();
#else
    return dwt_cycles();
#endif
}

void board_exit(int code) {
#if HWB_EMULATED
    semihosting_exit(code);
#else
    /* The host reads DONE or the error and resets the board. No WFI: on a sleeping STM32 the
     * debugger's memory accesses depend on DBGMCU_CR.DBG_SLEEP. */
    (void)code;
    for (;;) {
    }
#endif
}

#endif
