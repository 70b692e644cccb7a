/* STMicroelectronics STM32F4: STM32F405/407 (reference manual RM0090) and STM32F401/411 (RM0383).
 * Register addresses and bits are from those manuals: memory map (RM0090 §2.3, RM0383 §2.3), RCC
 * (RM0090 §6.3, RM0383 §6.3), flash interface (RM0090 §3.9, RM0383 §3.8), PWR (RM0090 §5.4,
 * RM0383 §5.4), GPIO (RM0090 §8.4, RM0383 §8.4), USART (RM0090 §30.6, RM0383 §19.6), TIM2 (RM0090
 * §18.4, RM0383 §13.4); alternate-function numbers from the datasheets' pin tables (STM32F405
 * DS8626, STM32F411 DS10314).
 *
 * Clock: the PLL from the 16 MHz HSI (present on every board, no crystal or ST-LINK clock needed)
 * to the board file's clock, flash wait states, prefetch and caches, APB1 at /4 and APB2 at /2
 * (within every F4's limits). Every wait on a ready bit is bounded; a set-up that fails leaves the
 * chip on the HSI and names the bit that never came in the first line the board prints (CLOCK). A
 * failure stops the board with an ERROR line unless the board file says the clock set-up may fail:
 * QEMU's netduinoplus2 (an STM32F405) models no RCC, whose registers read 0, so there the PLL never
 * reports ready and the firmware runs on.
 *
 * Counting: DWT->CYCCNT on real chips; on the emulator, TIM2 (QEMU clocks the STM32 timers at
 * 1 GHz, hw/arm/stm32f405_soc.c: a prescaler of 128 makes one tick per 128 ns, one instruction
 * under -icount shift=7, and the 32-bit count wraps only after 2**32 instructions). */
#include "board.h"
#include "dwt.h"
#include "protocol.h"
#include "semihosting.h"

#define REG(address) (*(volatile uint32_t *)(address))

#define RCC_CR REG(0x40023800u)
#define RCC_PLLCFGR REG(0x40023804u)
#define RCC_CFGR REG(0x40023808u)
#define RCC_AHB1ENR REG(0x40023830u)
#define RCC_APB1ENR REG(0x40023840u)
#define RCC_APB2ENR REG(0x40023844u)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_APB1ENR_TIM2EN (1u << 0)
#define RCC_APB1ENR_PWREN (1u << 28)

#define FLASH_ACR REG(0x40023C00u)
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)

/* VOS: bit 14 set is scale 1 on the F405 (one bit, set at reset) and, with bit 15 set at reset,
 * VOS = 0b11, scale 1, on the F411 (reset: scale 2, at most 84 MHz). */
#define PWR_CR REG(0x40007000u)
#define PWR_CR_VOS_SCALE1 (1u << 14)

#define HSI_HZ 16000000u
/* PLL: VCO input HSI / M = 2 MHz (the input the manuals recommend, least jitter), VCO output
 * N x 2 MHz = 2 x the clock (100..432 MHz allowed), SYSCLK = VCO / P with P = 2, the 48 MHz
 * domain VCO / Q at or below 48 MHz. */
#if HWB_CLOCK_HZ % 1000000u != 0 || HWB_CLOCK_HZ < 50000000u || HWB_CLOCK_HZ > 216000000u
#error "stm32f4.c sets up whole-MHz clocks from 50 to 216 MHz"
#endif
#define PLL_M 8u
#define PLL_N (HWB_CLOCK_HZ / 1000000u)
#define PLL_P_BITS 0u /* P = 2 */
#define PLL_Q ((2u * HWB_CLOCK_HZ + 47999999u) / 48000000u)
/* 30 MHz per wait state at 2.7-3.6 V (RM0090 §3.5.1); at least what the F411 asks (RM0383 §3.4.1). */
#define FLASH_LATENCY ((HWB_CLOCK_HZ - 1u) / 30000000u)
#define READY_POLLS 100000u /* >= 30 ms at 16 MHz: far beyond the PLL's lock time */

/* The UART the board file names: its clock enable, pins and their alternate function. */
#define GPIOA_BASE 0x40020000u
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#if HWB_UART_BASE == 0x40011000u /* USART1 on APB2: TX PA9, RX PA10, AF7 */
#define UART_ENABLE() (RCC_APB2ENR |= 1u << 4)
#define UART_ON_APB2 1
#define UART_TX_PIN 9u
#define UART_RX_PIN 10u
#elif HWB_UART_BASE == 0x40004400u /* USART2 on APB1: TX PA2, RX PA3, AF7 */
#define UART_ENABLE() (RCC_APB1ENR |= 1u << 17)
#define UART_ON_APB2 0
#define UART_TX_PIN 2u
#define UART_RX_PIN 3u
#else
#error "stm32f4.c knows the pins of USART1 and USART2; add the board's UART"
#endif
#define UART_AF 7u
#define USART_SR REG(HWB_UART_BASE + 0x00)
#define USART_DR REG(HWB_UART_BASE + 0x04)
#define USART_BRR REG(HWB_UART_BASE + 0x08)
#define USART_CR1 REG(HWB_UART_BASE + 0x0C)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_UE (1u << 13)
#define USART_CR1_TE (1u << 3)

#define TIM2_CR1 REG(0x40000000u)
#define TIM2_EGR REG(0x40000014u)
#define TIM2_CNT REG(0x40000024u)
#define TIM2_PSC REG(0x40000028u)
#define TIM2_ARR REG(0x4000002Cu)

/* The clock the set-up reached: the APB clocks follow from it. */
static uint32_t sysclk_hz = HSI_HZ;
static uint32_t apb1_div = 1, apb2_div = 1;

static int wait_for(volatile uint32_t *reg, uint32_t mask, uint32_t value) {
    for (uint32_t i = 0; i < READY_POLLS; i++) {
        if ((*reg & mask) == value) return 1;
    }
    return 0;
}

/* NULL when the chip runs at HWB_CLOCK_HZ, else the name of the ready bit that never came. */
static const char *clock_setup(void) {
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    PWR_CR |= PWR_CR_VOS_SCALE1;
    RCC_PLLCFGR = PLL_M | (PLL_N << 6) | (PLL_P_BITS << 16) | (PLL_Q << 24); /* source: HSI */
    RCC_CR |= RCC_CR_PLLON;
    if (!wait_for(&RCC_CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) return "PLLRDY";
    /* More wait states before a faster clock; read back until the flash interface took them. */
    FLASH_ACR = FLASH_LATENCY | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    if (!wait_for(&FLASH_ACR, FLASH_ACR_LATENCY_MASK, FLASH_LATENCY)) return "FLASH_ACR.LATENCY";
    RCC_CFGR = RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2 | RCC_CFGR_SW_PLL;
    if (!wait_for(&RCC_CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL)) {
        RCC_CFGR = 0; /* back to the HSI, undivided */
        return "SWS=PLL";
    }
    sysclk_hz = HWB_CLOCK_HZ;
    apb1_div = 4;
    apb2_div = 2;
    return 0;
}

static void uart_init(void) {
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN;
    UART_ENABLE();
    volatile uint32_t *moder = &REG(GPIOA_BASE + 0x00);
    volatile uint32_t *afr = &REG(GPIOA_BASE + 0x20); /* AFRL, then AFRH */
    const uint32_t pins[2] = {UART_TX_PIN, UART_RX_PIN};
    for (int i = 0; i < 2; i++) {
        uint32_t pin = pins[i];
        *moder = (*moder & ~(3u << (2 * pin))) | (2u << (2 * pin)); /* alternate function */
        afr[pin / 8] = (afr[pin / 8] & ~(15u << (4 * (pin % 8)))) | (UART_AF << (4 * (pin % 8)));
    }
    uint32_t pclk = sysclk_hz / (UART_ON_APB2 ? apb2_div : apb1_div);
    USART_BRR = (pclk + HWB_UART_BAUD / 2) / HWB_UART_BAUD; /* oversampling by 16 */
    USART_CR1 = USART_CR1_UE | USART_CR1_TE;
}

static void counter_start(void) {
#if HWB_EMULATED
    RCC_APB1ENR |= RCC_APB1ENR_TIM2EN;
    TIM2_PSC = 127u;
    TIM2_ARR = 0xFFFFFFFFu;
    TIM2_EGR = 1u; /* UG: load the prescaler now */
    TIM2_CR1 = 1u; /* CEN */
#else
    dwt_start();
#endif
}

static void report_clock(const char *failed) {
    hwb_line line;
    line_begin(&line, "CLOCK");
    line_u32(&line, sysclk_hz);
    line_word(&line, failed ? failed : "ok");
    line_end(&line);
    if (failed && !HWB_CLOCK_SETUP_MAY_FAIL) {
        line_begin(&line, "ERROR");
        line_u32(&line, 4);
        static const char *const why[] = {"clock", "set-up", "failed:", 0, "never", "came"};
        for (unsigned i = 0; i < sizeof why / sizeof why[0]; i++) line_word(&line, why[i] ? why[i] : failed);
        line_end(&line);
        board_exit(4);
    }
}

void board_init(void) {
    static int ready; /* the fault handler calls this again: set the clock up once */
    if (ready) return;
    ready = 1;
    const char *failed = clock_setup();
    uart_init();
    counter_start();
    report_clock(failed);
}

void board_write(const char *text, uint32_t length) {
    for (uint32_t i = 0; i < length; i++) {
        while (!(USART_SR & USART_SR_TXE)) {
        }
        USART_DR = (uint8_t)text[i];
    }
}

uint32_t board_ticks(void) {
#if HWB_EMULATED
    return TIM2_CNT;
#else
    return dwt_cycles();
#endif
}

void board_exit(int code) {
#if HWB_EMULATED
    semihosting_exit(code);
#else
    (void)code; /* a real board idles; the host reads DONE or the error and resets it */
    for (;;) {
        __asm__ volatile("wfi");
    }
#endif
}
