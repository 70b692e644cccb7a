/* What every STM32 port shares: register access, pins in alternate-function mode, and the USART
 * (or LPUART) of the STM32F7 and STM32L4+ with its ISR/TDR register layout.
 *
 * GPIO, the reference manuals' "General-purpose I/Os (GPIO)" register maps (RM0090, RM0383, RM0385,
 * RM0410, RM0432): MODER at +0x00 (2 bits a pin, 0b10 alternate function), AFRL/AFRH at +0x20/+0x24
 * (4 bits a pin). The F7's USART (RM0385, RM0410: "Universal synchronous receiver transmitter
 * (USART)" register map) and the L4+'s LPUART (RM0432: "Low-power universal asynchronous receiver
 * transmitter (LPUART)" register map): CR1 at +0x00 (UE bit 0, TE bit 3), BRR at +0x0C, ISR at +0x1C
 * (TXE bit 7), TDR at +0x28. (The STM32F4's USART has the older SR/DR layout: stm32f4.c.) */
#ifndef HWB_STM32_H
#define HWB_STM32_H

#include <stdint.h>

#include "clock.h"

#define REG(address) (*(volatile uint32_t *)(address))

static inline void gpio_alternate(uint32_t port, uint32_t pin, uint32_t function) {
    volatile uint32_t *moder = &REG(port + 0x00);
    volatile uint32_t *afr = &REG(port + 0x20) + pin / 8;
    *moder = (*moder & ~(3u << (2 * pin))) | (2u << (2 * pin));
    *afr = (*afr & ~(15u << (4 * (pin % 8)))) | (function << (4 * (pin % 8)));
}

static inline void usart_start(uint32_t base, uint32_t brr) {
    REG(base + 0x0C) = brr;
    REG(base + 0x00) = (1u << 0) | (1u << 3); /* UE, TE */
}

/* Gives up on a character whose TXE never comes (a UART without its clock): the board stays
 * silent and the host reports it so, instead of hanging here. */
static inline void usart_write(uint32_t base, const char *text, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        if (!wait_for(&REG(base + 0x1C), 1u << 7, 1u << 7)) return; /* TXE */
        REG(base + 0x28) = (uint8_t)text[i];
    }
}

/* A real board that finished idles until the host resets it. No WFI: on a sleeping STM32 the
 * debugger's memory accesses depend on DBGMCU_CR.DBG_SLEEP. */
static inline __attribute__((noreturn)) void idle_forever(void) {
    for (;;) {
    }
}

#endif
