/* The clock tree the STM32F4 and STM32F7 share (the same RCC, flash-interface and PWR addresses and
 * PLL), from the reference manuals RM0090 (STM32F405/407), RM0383 (STM32F411), RM0385 (STM32F746) and
 * RM0410 (STM32F767), their chapters "Reset and clock control (RCC)", "Embedded flash memory
 * interface" and "Power controller (PWR)"; RCC at 0x40023800, flash interface at 0x40023C00, PWR at
 * 0x40007000 (each manual's memory map).
 *
 * The PLL runs from the HSE when the board file names one (hse_clock; hse_bypass for a clock signal
 * such as the ST-LINK's 8 MHz MCO, RCC_CR.HSEBYP) and else from the 16 MHz HSI. Its input is divided
 * to 2 MHz (1 MHz when the source is no multiple of 2 MHz, as the DISCO's 25 MHz crystal), the VCO
 * runs at twice the core clock (100..432 MHz), P = 2, and Q keeps the 48 MHz domain at or below
 * 48 MHz. Flash: one wait state per 30 MHz at 2.7-3.6 V (the manuals' tables "Number of wait states
 * according to CPU clock (HCLK) frequency"), the fewest the board file may ask. */
#ifndef HWB_STM32_RCC_H
#define HWB_STM32_RCC_H

#include "stm32.h"

#define RCC_CR REG(0x40023800u)
#define RCC_PLLCFGR REG(0x40023804u)
#define RCC_CFGR REG(0x40023808u)
#define RCC_AHB1ENR REG(0x40023830u)
#define RCC_APB1ENR REG(0x40023840u)
#define RCC_APB2ENR REG(0x40023844u)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_PLLCFGR_FIELDS 0x0F437FFFu /* PLLM 5:0, PLLN 14:6, PLLP 17:16, PLLSRC 22, PLLQ 27:24 */
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_APB1ENR_PWREN (1u << 28)
#define APB1_DIV 4u /* within every F4's and F7's APB1 limit (54 MHz at 216 MHz) */
#define APB2_DIV 2u

#define FLASH_ACR REG(0x40023C00u)
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)

#define PWR_CR REG(0x40007000u) /* PWR_CR1 on the F7 */

#define HSI_HZ 16000000u
#define RESET_CLOCK_HZ HSI_HZ /* also the clock a failed set-up leaves */
#ifdef HWB_HSE_HZ
#define PLL_SOURCE_HZ HWB_HSE_HZ
#define PLL_SOURCE_BITS RCC_PLLCFGR_SRC_HSE
#else
#define PLL_SOURCE_HZ HSI_HZ
#define PLL_SOURCE_BITS 0u
#endif
#define PLL_INPUT_HZ (PLL_SOURCE_HZ % 2000000u == 0 ? 2000000u : 1000000u)
#define PLL_M (PLL_SOURCE_HZ / PLL_INPUT_HZ)
#define PLL_N (2u * HWB_CLOCK_HZ / PLL_INPUT_HZ)
#define PLL_Q ((2u * HWB_CLOCK_HZ + 47999999u) / 48000000u)
#if PLL_SOURCE_HZ % 1000000u != 0 || PLL_M < 2 || PLL_M > 63
#error "the PLL needs a whole-MHz source of 4 to 26 MHz (board file: hse_clock)"
#endif
#if HWB_CLOCK_HZ % 1000000u != 0 || HWB_CLOCK_HZ < 50000000u || HWB_CLOCK_HZ > 216000000u
#error "the STM32F4/F7 PLL set-up makes whole-MHz clocks from 50 to 216 MHz"
#endif

#define MIN_WAIT_STATES ((HWB_CLOCK_HZ - 1u) / 30000000u)
#ifndef HWB_WAIT_STATES
#define HWB_WAIT_STATES MIN_WAIT_STATES
#endif
#if HWB_WAIT_STATES < MIN_WAIT_STATES
#error "fewer flash wait states than the clock needs (board file: wait_states; one per 30 MHz)"
#endif
#ifndef HWB_ART
#define HWB_ART 1
#endif

/* The BRR (oversampling by 16) of a USART on the APB pll_select divides by apb_div: on the reset
 * clock the APBs run undivided. */
static inline uint32_t apb_usart_brr(uint32_t core_hz, uint32_t apb_div) {
    uint32_t apb_hz = core_hz == HWB_CLOCK_HZ ? core_hz / apb_div : core_hz;
    return (apb_hz + HWB_UART_BAUD / 2) / HWB_UART_BAUD;
}

/* The HSE (when the board has one) and the PLL, locked; NULL, or the ready bit that never came. */
static inline const char *pll_start(void) {
#ifdef HWB_HSE_HZ
    if (HWB_HSE_BYPASS) RCC_CR |= RCC_CR_HSEBYP; /* writable only while the HSE is off */
    RCC_CR |= RCC_CR_HSEON;
    if (!wait_for(&RCC_CR, RCC_CR_HSERDY, RCC_CR_HSERDY)) return "HSERDY";
#endif
    /* M, N, P (= 2: zero), the source and Q; the other bits (reserved, the F767's PLLR) keep their
     * reset values, as the manuals ask. */
    RCC_PLLCFGR = (RCC_PLLCFGR & ~RCC_PLLCFGR_FIELDS) | PLL_M | (PLL_N << 6) | PLL_SOURCE_BITS | (PLL_Q << 24);
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_for(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) return "PLLRDY";
    return 0;
}

/* More wait states before a faster clock, read back until the flash interface took them; then the
 * PLL as the system clock (back to the HSI if it does not take). */
static inline const char *pll_select(uint32_t flash_acr) {
    FLASH_ACR = flash_acr;
    if (!wait_for(&FLASH_ACR, FLASH_ACR_LATENCY_MASK, HWB_WAIT_STATES)) return "FLASH_ACR.LATENCY";
    RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2 | RCC_CFGR_SW_PLL;
    if (!wait_for(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR = 0;
        return "SWS=PLL";
    }
    return 0;
}

#endif
