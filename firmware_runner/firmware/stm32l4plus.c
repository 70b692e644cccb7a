/* STMicroelectronics STM32L4+ (STM32L4R5/S5/R7/S7/R9/S9, reference manual RM0432), on the
 * NUCLEO-L4R5ZI (user manual UM2179). Register addresses and bits are from RM0432: the memory map,
 * and the chapters "Reset and clock control (RCC)", "Power control (PWR)", "Embedded flash memory
 * (FLASH)", "General-purpose I/Os (GPIO)" and "Low-power universal asynchronous receiver
 * transmitter (LPUART)" (through stm32.h); LPUART1's alternate function on PG7/PG8 from the
 * STM32L4R5 datasheet's pin table (DS12023, AF8).
 *
 * Clock: the PLL from the 16 MHz HSI (input /4 = 4 MHz, VCO at twice the core clock, R = 2) to the
 * board file's clock, 120 MHz at most in range 1 boost mode (PWR_CR5.R1MODE cleared above 80 MHz,
 * then VOSF; the AHB divided by 2 across the switch to the PLL and restored after 1 us, as the RCC
 * chapter asks for a switch above 80 MHz), one flash wait state per 20 MHz in range 1 (the flash
 * chapter's wait-state table: 5 at 120 MHz), and the ART accelerator
 * (FLASH_ACR PRFTEN/ICEN/DCEN) on unless the board file says art = false. Every wait on a ready bit
 * is bounded; the first line (CLOCK) names the one that never came, and the board then stops.
 *
 * UART: LPUART1 on PG7 (TX) / PG8 (RX), the ST-LINK's virtual COM port (UM2179, "Virtual COM
 * port"); port G's upper pins are powered from VDDIO2, which PWR_CR2.IOSV must declare valid first
 * (the PWR chapter, "Independent I/O supply rail").
 * Counting: DWT->CYCCNT. */
#include "stm32.h"

#if HWB_EMULATED
#error "stm32l4plus.c runs on real STM32L4+ chips (QEMU has no STM32L4+ machine)"
#endif
#if defined(HWB_ICACHE) || defined(HWB_DCACHE) || defined(HWB_HSE_HZ)
#error "stm32l4plus.c: a Cortex-M4 has no L1 caches (the flash caches are the ART: art) and the port runs from the HSI"
#endif
#if HWB_UART_BASE != 0x40008000u
#error "stm32l4plus.c knows LPUART1 (PG7/PG8); add the board's UART"
#endif

#define RCC_CR REG(0x40021000u)
#define RCC_CFGR REG(0x40021008u)
#define RCC_PLLCFGR REG(0x4002100Cu)
#define RCC_AHB2ENR REG(0x4002104Cu)
#define RCC_APB1ENR1 REG(0x40021058u)
#define RCC_APB1ENR2 REG(0x4002105Cu)
#define RCC_CR_HSION (1u << 8)
#define RCC_CR_HSIRDY (1u << 10)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CFGR_SW_PLL 3u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (3u << 2)
#define RCC_CFGR_HPRE_MASK (15u << 4)
#define RCC_CFGR_HPRE_DIV2 (8u << 4)
#define RCC_PLLCFGR_SRC_HSI16 2u
#define RCC_PLLCFGR_PLLREN (1u << 24)
#define RCC_AHB2ENR_GPIOGEN (1u << 6)
#define RCC_APB1ENR1_PWREN (1u << 28)
#define RCC_APB1ENR2_LPUART1EN (1u << 0)

#define PWR_CR2 REG(0x40007004u)
#define PWR_SR2 REG(0x40007014u)
#define PWR_CR5 REG(0x40007080u)
#define PWR_CR2_IOSV (1u << 9)
#define PWR_SR2_VOSF (1u << 10)
#define PWR_CR5_R1MODE (1u << 8)
#define BOOST_ABOVE_HZ 80000000u

#define FLASH_ACR REG(0x40022000u)
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_ART ((1u << 8) | (1u << 9) | (1u << 10)) /* PRFTEN, ICEN, DCEN */

#define GPIOG_BASE 0x48001800u
#define LPUART1_AF 8u
#define UART_LAYOUT USART_ISR_TDR

#define RESET_CLOCK_HZ 4000000u /* the MSI: also the clock a failed set-up leaves */
#define PLL_M 4u /* HSI16 / 4: a 4 MHz VCO input (2.66..16 MHz allowed) */
#define PLL_N (2u * HWB_CLOCK_HZ / 4000000u)
#if HWB_CLOCK_HZ % 2000000u != 0 || HWB_CLOCK_HZ < 32000000u || HWB_CLOCK_HZ > 120000000u
#error "stm32l4plus.c makes clocks from 32 to 120 MHz in steps of 2 MHz"
#endif

#define MIN_WAIT_STATES ((HWB_CLOCK_HZ - 1u) / 20000000u)
#ifndef HWB_WAIT_STATES
#define HWB_WAIT_STATES MIN_WAIT_STATES
#endif
#if HWB_WAIT_STATES < MIN_WAIT_STATES
#error "fewer flash wait states than the clock needs (board file: wait_states; one per 20 MHz)"
#endif
#ifndef HWB_ART
#define HWB_ART 1
#endif

#include "stm32_board.h"

static void wait_1us(void) {
    for (volatile uint32_t i = 0; i < 200u; i++) {
    }
}

static const char *clock_setup(void) {
    RCC_APB1ENR1 |= RCC_APB1ENR1_PWREN;
    if (HWB_CLOCK_HZ > BOOST_ABOVE_HZ) {
        PWR_CR5 &= ~PWR_CR5_R1MODE; /* range 1 (the reset range) in boost mode */
        if (!wait_for(&PWR_SR2, PWR_SR2_VOSF, 0)) return "VOSF";
    }
    FLASH_ACR = HWB_WAIT_STATES | (HWB_ART ? FLASH_ACR_ART : 0u);
    if (!wait_for(&FLASH_ACR, FLASH_ACR_LATENCY_MASK, HWB_WAIT_STATES)) return "FLASH_ACR.LATENCY";
    RCC_CR |= RCC_CR_HSION;
    if (!wait_for(&RCC_CR, RCC_CR_HSIRDY, RCC_CR_HSIRDY)) return "HSIRDY";
    RCC_PLLCFGR = RCC_PLLCFGR_SRC_HSI16 | ((PLL_M - 1u) << 4) | (PLL_N << 8) | RCC_PLLCFGR_PLLREN; /* R = 2 */
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_for(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) return "PLLRDY";
    RCC_CFGR = RCC_CFGR_HPRE_DIV2 | RCC_CFGR_SW_PLL;
    if (!wait_for(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR = 0; /* back to the MSI, undivided */
        return "SWS=PLL";
    }
    wait_1us();
    RCC_CFGR &= ~RCC_CFGR_HPRE_MASK;
    return 0;
}

static uint32_t uart_connect(uint32_t core_hz) {
    PWR_CR2 |= PWR_CR2_IOSV; /* VDDIO2 valid: powers PG2..PG15 */
    RCC_AHB2ENR |= RCC_AHB2ENR_GPIOGEN;
    RCC_APB1ENR2 |= RCC_APB1ENR2_LPUART1EN; /* clocked from PCLK1 = the core clock (RCC_CCIPR at reset) */
    gpio_alternate(GPIOG_BASE, 7, LPUART1_AF);
    gpio_alternate(GPIOG_BASE, 8, LPUART1_AF);
    /* LPUART: BRR = 256 x f / baud (the LPUART chapter's baud rate generation), at least 0x300 */
    return (uint32_t)((256ull * core_hz + HWB_UART_BAUD / 2) / HWB_UART_BAUD);
}
