/* Cortex-M start-up: the vector table, copying .data and clearing .bss, enabling the FPU, painting
 * the stack (to measure its high-water mark), and a fault handler that reports and stops. The
 * symbols come from the linker script firmware.py writes for the board. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "protocol.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_limit, __stack_top;
int main(void);
void reset_handler(void);
void fault_handler(void);
void fault_report(const uint32_t *frame);

#define STACK_PAINT 0xC0FFEE11u
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&__stack_top,
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
};

/* Paints the stack below the current frame; stack_used() finds the deepest overwritten word. */
static void paint_stack(void) {
    volatile uint32_t marker;
    for (uint32_t *p = &__stack_limit; p < (uint32_t *)&marker - 16; p++) *p = STACK_PAINT;
}

uint32_t stack_used(void) {
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

void reset_handler(void) {
    memcpy(&__data_start, &__data_load, (uintptr_t)&__data_end - (uintptr_t)&__data_start);
    memset(&__bss_start, 0, (uintptr_t)&__bss_end - (uintptr_t)&__bss_start);
#if defined(__ARM_FP)
    SCB_CPACR |= 0xFu << 20; /* full access to CP10 and CP11 */
    __asm__ volatile("dsb\n isb" ::: "memory");
#endif
    paint_stack();
    board_exit(main());
}

/* The exception frame is on the main stack: hand its address to the C reporter before anything
 * else is pushed. */
__attribute__((naked)) void fault_handler(void) {
    __asm__ volatile("mrs r0, msp\n ldr r1, =fault_report\n bx r1");
}

void fault_report(const uint32_t *frame) {
    board_init(); /* the fault may come before main set up the UART */
    hwb_line line;
    line_begin(&line, "FAULT");
#if defined(__ARM_ARCH_6M__)
    line_u32(&line, 0); /* Armv6-M (Cortex-M0) has no fault status registers */
    line_u32(&line, 0);
#else
    line_u32(&line, SCB_CFSR);
    line_u32(&line, SCB_HFSR);
#endif
    line_u32(&line, frame[6]); /* stacked PC */
    line_u32(&line, frame[5]); /* stacked LR */
    line_end(&line);
    board_exit(3);
}
