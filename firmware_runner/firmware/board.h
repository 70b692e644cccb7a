/* What the benchmark loop needs from a board: a UART to print on, a free-running counter, and a way
 * to stop. One small file per board family implements it (mps2.c for QEMU's MPS2 images). */
#ifndef HWB_BOARD_H
#define HWB_BOARD_H

#include <stdint.h>

void board_init(void);
void board_write(const char *text, uint32_t length);
uint32_t board_ticks(void); /* counts up; wraps at 2^32 */
void board_exit(int code) __attribute__((noreturn));

#endif
