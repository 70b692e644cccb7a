/* Stopping an emulated board: Arm semihosting SYS_EXIT_EXTENDED (operation 0x20, reason
 * ADP_Stopped_ApplicationExit 0x20026 with the exit code; Arm "Semihosting for AArch32 and
 * AArch64", §6.5). QEMU run with -semihosting exits with that code. On a real board without a
 * debugger attached the BKPT faults: real-board ports stop differently. */
#ifndef HWB_SEMIHOSTING_H
#define HWB_SEMIHOSTING_H

#include <stdint.h>

static inline __attribute__((noreturn)) void semihosting_exit(int code) {
    volatile uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm__("r0") = 0x20;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

#endif
