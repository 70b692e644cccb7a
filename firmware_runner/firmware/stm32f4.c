/* STMicroelectronics STM32F4: STM32F405/407 (reference manual RM0090) and STM32F401/411 (RM0383).
 * Register addresses and bits are from those manuals: memory map (RM0090 §2.3, RM0383 §2.3), RCC
 * (RM0090 §6.3, RM0383 §6.3), flash interface (RM0090 §3.9, RM0383 §3.8), PWR (RM0090 §5.4,
 * RM0383 §5.4), GPIO (RM0090 §8.4, RM0383 §8.4), USART (RM0090 §30.6, RM0383 §19.6), TIM2 (RM0090
 * §18.4, RM0383 §13.4); alternate-function numbers from the datasheets' pin tables (STM32F405
 * DS8626, STM32F411 DS10314).
 *
 * Clock (stm32_rcc.h): the PLL to the board file's clock, its flash wait states and the ART
 * accelerator (prefetch and the flash instruction and data caches, FLASH_ACR PRFTEN/ICEN/DCEN; on
 * unless the board file says art = false), APB1 at /4 and APB2 at /2. A set-up that fails leaves
 * the chip on the HSI and names the bit that never came in the first line (CLOCK): QEMU's
 * netduinoplus2 (an STM32F405) models no RCC, whose registers read 0, so there the PLL never
 * reports ready and, as its board file allows, the firmware runs on.
 *
 * Counting: DWT->CYCCNT on real chips; on the emulator, TIM2 (QEMU clocks the STM32 timers at
 * 1 GHz, hw/arm/stm32f405_soc.c: a prescaler of 128 makes one tick per 128 ns, one instruction
 * under -icount shift=7, and the 32-bit count wraps only after 2**32 instructions). */
#include "stm32_rcc.h"

#if defined(HWB_ICACHE) || defined(HWB_DCACHE)
#error "a Cortex-M4 has no L1 caches: the STM32F4's flash caches are its ART accelerator (board file: art)"
#endif

#define RCC_APB1ENR_TIM2EN (1u << 0)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)
#define FLASH_ACR_ART (FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN)

/* VOS: bit 14 set is scale 1 on the F405 (one bit, set at reset) and, with bit 15 set at reset,
 * VOS = 0b11, scale 1, on the F411 (reset: scale 2, at most 84 MHz). */
#define PWR_CR_VOS_SCALE1 (1u << 14)

/* The UART the board file names: its clock enable, pins and their alternate function. */
#define GPIOA_BASE 0x40020000u
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#if HWB_UART_BASE == 0x40011000u /* USART1 on APB2: TX PA9, RX PA10, AF7 */
#define UART_ENABLE() (RCC_APB2ENR |= 1u << 4)
#define UART_APB_DIV APB2_DIV
#define UART_TX_PIN 9u
#define UART_RX_PIN 10u
#elif HWB_UART_BASE == 0x40004400u /* USART2 on APB1: TX PA2, RX PA3, AF7 */
#define UART_ENABLE() (RCC_APB1ENR |= 1u << 17)
#define UART_APB_DIV APB1_DIV
#define UART_TX_PIN 2u
#define UART_RX_PIN 3u
#else
#error "stm32f4.c knows the pins of USART1 and USART2; add the board's UART"
#endif
#define UART_AF 7u
#define UART_LAYOUT USART_SR_DR

#define TIM2_CR1 REG(0x40000000u)
#define TIM2_EGR REG(0x40000014u)
#define TIM2_CNT REG(0x40000024u)
#define TIM2_PSC REG(0x40000028u)
#define TIM2_ARR REG(0x4000002Cu)

#include "stm32_board.h"

static const char *clock_setup(void) {
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    PWR_CR |= PWR_CR_VOS_SCALE1;
    const char *failed = pll_start();
    return failed ? failed : pll_select(HWB_WAIT_STATES | (HWB_ART ? FLASH_ACR_ART : 0u));
}

static uint32_t uart_connect(uint32_t core_hz) {
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    UART_ENABLE();
    gpio_alternate(GPIOA_BASE, UART_TX_PIN, UART_AF);
    gpio_alternate(GPIOA_BASE, UART_RX_PIN, UART_AF);
    return apb_usart_brr(core_hz, UART_APB_DIV);
}

#if HWB_EMULATED
static void qemu_timer_start(void) {
    RCC_APB1ENR |= RCC_APB1ENR_TIM2EN;
    TIM2_PSC = 127u;
    TIM2_ARR = 0xFFFFFFFFu;
    TIM2_EGR = 1u; /* UG: load the prescaler now */
    TIM2_CR1 = 1u; /* CEN */
}

static uint32_t qemu_timer_ticks(void) { return TIM2_CNT; }
#endif
