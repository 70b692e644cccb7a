/* The line protocol the firmware prints and firmware_runner/protocol.py parses. Every line is
 *     @<KIND> <field> <field> ...#<crc32 of the text between @ and #, 8 hex digits>\n
 * so the host can tell a line from boot noise or a damaged one. Fields are decimal integers,
 * hex byte strings or words. Lines stay under HWB_LINE_MAX characters. */
#ifndef HWB_PROTOCOL_H
#define HWB_PROTOCOL_H

#include <stdint.h>

#define HWB_PROTOCOL_VERSION 1
#define HWB_LINE_MAX 200

typedef struct {
    char text[HWB_LINE_MAX + 16];
    uint32_t length;
} hwb_line;

void line_begin(hwb_line *line, const char *kind);
void line_word(hwb_line *line, const char *word);
void line_u32(hwb_line *line, uint32_t value);
void line_hex(hwb_line *line, const uint8_t *bytes, uint32_t count);
void line_end(hwb_line *line); /* appends the checksum and writes the line to the UART */

/* The first line of a board that sets its clock up: the core clock reached, "ok" or the ready bit
 * that never came, then the settings in effect, read back from the chip, as name=value (the board
 * file's names: wait_states, art, icache, dcache). A failed set-up then stops the board with
 * ERROR 4 unless the board file says it may fail (an emulator without the clock tree). */
typedef struct {
    const char *name;
    uint32_t value;
} hwb_setting;
void report_clock(uint32_t hz, const char *failed, const hwb_setting *settings, uint32_t count);

#endif
