/* What every STM32 port shares: register access, pins in alternate-function mode, and the USART (or
 * LPUART) in either of its two register layouts.
 *
 * GPIO, the reference manuals' "General-purpose I/Os (GPIO)" register maps (RM0090, RM0383, RM0385,
 * RM0410, RM0432): MODER at +0x00 (2 bits a pin, 0b10 alternate function), AFRL/AFRH at +0x20/+0x24
 * (4 bits a pin). The USART, the manuals' "Universal synchronous receiver transmitter (USART)" and
 * (RM0432) "Low-power universal asynchronous receiver transmitter (LPUART)" register maps: TE is
 * CR1 bit 3 and TXE bit 7 of the status register everywhere; the STM32F4's (RM0090, RM0383) has the
 * older layout (USART_SR_DR), SR at +0x00, DR at +0x04, BRR at +0x08, CR1 at +0x0C (UE bit 13); the
 * F7's (RM0385, RM0410) and the L4+'s LPUART the newer one (USART_ISR_TDR), CR1 at +0x00 (UE bit
 * 0), BRR at +0x0C, ISR at +0x1C, TDR at +0x28. */
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

/* A USART's registers (offsets from its base) and CR1's enable bits (UE, TE). */
typedef struct {
    uint32_t cr1, brr, status, data, enable;
} usart_layout;
#define USART_SR_DR {.cr1 = 0x0C, .brr = 0x08, .status = 0x00, .data = 0x04, .enable = (1u << 13) | (1u << 3)}
#define USART_ISR_TDR {.cr1 = 0x00, .brr = 0x0C, .status = 0x1C, .data = 0x28, .enable = (1u << 0) | (1u << 3)}

static inline void usart_start(const usart_layout *usart, uint32_t base, uint32_t brr) {
    REG(base + usart->brr) = brr;
    REG(base + usart->cr1) = usart->enable;
}

/* Gives up on a character whose TXE never comes (a UART without its clock): the board stays
 * silent and the host reports it so, instead of hanging here. */
static inline void usart_write(const usart_layout *usart, uint32_t base, const char *text, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        if (!wait_for(&REG(base + usart->status), 1u << 7, 1u << 7)) return; /* TXE */
        REG(base + usart->data) = (uint8_t)text[i];
    }
}

#endif
