/* STMicroelectronics STM32F7: STM32F746 (reference manual RM0385) and STM32F767 (RM0410), on the
 * NUCLEO-F746ZG and NUCLEO-F767ZI (user manual UM1974) and the STM32F746G-DISCO (UM1907). Register
 * addresses and bits are from those manuals: the memory map, and the chapters "Reset and clock
 * control (RCC)", "Power controller (PWR)", "Embedded flash memory (FLASH)", "General-purpose I/Os
 * (GPIO)" and "Universal synchronous receiver transmitter (USART)"; alternate functions from the
 * datasheets' pin tables (STM32F746 DS10916, STM32F767 DS11532); the Cortex-M7 caches from the
 * Armv7-M Architecture Reference Manual (DDI 0403: the system control block's CCR, CCSIDR, CSSELR
 * and cache maintenance operations ICIALLU, DCISW) and the Cortex-M7 TRM (DDI 0489: 32-byte lines,
 * a 4-way data cache).
 *
 * Clock (stm32_rcc.h): the PLL from the HSE — on the Nucleo-144 boards the ST-LINK's 8 MHz MCO in
 * bypass mode (UM1974, "HSE clock (high-speed external clock)"), on the DISCO a 25 MHz crystal
 * (UM1907) — to 216 MHz: scale 1 with over-drive (above 180 MHz; the PWR chapter's "Entering
 * Over-drive mode": ODEN then ODRDY, ODSWEN then ODSWRDY, before the switch to the PLL), 7 flash
 * wait states, APB1 at /4 (54 MHz) and APB2 at /2 (108 MHz). The ART accelerator and prefetch
 * (FLASH_ACR ARTEN/PRFTEN; ART serves code fetched over the ITCM bus) and the core's L1 instruction
 * and data caches are on unless the board file turns them off. Every wait on a ready bit is
 * bounded; the first line (CLOCK) names the one that never came, and the board then stops.
 *
 * UART: USART3 on PD8 (TX) / PD9 (RX) on the Nucleo-144 (UM1974, "USART communication"), USART1 on
 * PA9 (TX) / PB7 (RX) on the DISCO (UM1907, "Virtual COM port"), both AF7, clocked from their APB
 * (RCC_DCKCFGR2 at reset).
 * Counting: DWT->CYCCNT. */
#include "stm32_rcc.h"

#if HWB_EMULATED
#error "stm32f7.c runs on real STM32F7 chips (QEMU has no STM32F7 machine)"
#endif

#define RCC_APB1ENR_USART3EN (1u << 18)
#define RCC_APB2ENR_USART1EN (1u << 4)
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIOD_BASE 0x40020C00u
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_AHB1ENR_GPIODEN (1u << 3)

#define PWR_CSR1 REG(0x40007004u)
#define PWR_CR1_VOS_SCALE1 (3u << 14)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)
#define OVERDRIVE_ABOVE_HZ 180000000u

#define FLASH_ACR_ARTEN (1u << 9)
#define FLASH_ACR_ART (FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN)

#define SCB_CCR REG(0xE000ED14u)
#define SCB_CCR_DC (1u << 16)
#define SCB_CCR_IC (1u << 17)
#define SCB_CCSIDR REG(0xE000ED80u)
#define SCB_CSSELR REG(0xE000ED84u)
#define SCB_ICIALLU REG(0xE000EF50u)
#define SCB_DCISW REG(0xE000EF60u)
#ifndef HWB_ICACHE
#define HWB_ICACHE 1
#endif
#ifndef HWB_DCACHE
#define HWB_DCACHE 1
#endif

#if HWB_UART_BASE == 0x40004800u /* USART3: TX PD8, RX PD9 */
#define UART_CLOCKS() (RCC_AHB1ENR |= RCC_AHB1ENR_GPIODEN, RCC_APB1ENR |= RCC_APB1ENR_USART3EN)
#define UART_PINS() (gpio_alternate(GPIOD_BASE, 8, 7), gpio_alternate(GPIOD_BASE, 9, 7))
#define UART_APB_DIV APB1_DIV
#elif HWB_UART_BASE == 0x40011000u /* USART1: TX PA9, RX PB7 */
#define UART_CLOCKS() (RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN, RCC_APB2ENR |= RCC_APB2ENR_USART1EN)
#define UART_PINS() (gpio_alternate(GPIOA_BASE, 9, 7), gpio_alternate(GPIOB_BASE, 7, 7))
#define UART_APB_DIV APB2_DIV
#else
#error "stm32f7.c knows USART3 (Nucleo-144) and USART1 (DISCO); add the board's UART"
#endif
#define UART_LAYOUT USART_ISR_TDR
#define CACHE_SETTINGS {"icache", (SCB_CCR & SCB_CCR_IC) != 0}, {"dcache", (SCB_CCR & SCB_CCR_DC) != 0}

#include "stm32_board.h"

static void barrier(void) { __asm__ volatile("dsb 0xF\n isb 0xF" ::: "memory"); }

static const char *clock_tree_setup(void) {
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    PWR_CR |= PWR_CR1_VOS_SCALE1;
    const char *failed = pll_start();
    if (failed) return failed;
    if (HWB_CLOCK_HZ > OVERDRIVE_ABOVE_HZ) {
        PWR_CR |= PWR_CR1_ODEN;
        if (!wait_for(&PWR_CSR1, PWR_CSR1_ODRDY, PWR_CSR1_ODRDY)) return "ODRDY";
        PWR_CR |= PWR_CR1_ODSWEN;
        if (!wait_for(&PWR_CSR1, PWR_CSR1_ODSWRDY, PWR_CSR1_ODSWRDY)) return "ODSWRDY";
    }
    return pll_select(HWB_WAIT_STATES | (HWB_ART ? FLASH_ACR_ART : 0u));
}

/* Invalidate, then enable (nothing is cached at reset, but the cache contents are undefined). */
static void caches_on(void) {
    if (HWB_ICACHE) {
        barrier();
        SCB_ICIALLU = 0;
        barrier();
        SCB_CCR |= SCB_CCR_IC;
        barrier();
    }
    if (HWB_DCACHE) {
        SCB_CSSELR = 0; /* level 1 data cache */
        barrier();
        uint32_t ccsidr = SCB_CCSIDR;
        for (uint32_t set = 0; set <= ((ccsidr >> 13) & 0x7FFFu); set++) {
            for (uint32_t way = 0; way <= ((ccsidr >> 3) & 0x3FFu); way++) SCB_DCISW = (set << 5) | (way << 30);
        }
        barrier();
        SCB_CCR |= SCB_CCR_DC;
        barrier();
    }
}

/* The caches go on whether or not the clock came up. */
static const char *clock_setup(void) {
    const char *failed = clock_tree_setup();
    caches_on();
    return failed;
}

static uint32_t uart_connect(uint32_t core_hz) {
    UART_CLOCKS();
    UART_PINS();
    return apb_usart_brr(core_hz, UART_APB_DIV);
}
