#include "protocol.h"

#include "board.h"
#include "hwb_runtime.h"

static void put(hwb_line *line, char c) {
    if (line->length < HWB_LINE_MAX) line->text[line->length++] = c;
}

void line_begin(hwb_line *line, const char *kind) {
    line->length = 0;
    put(line, '@');
    while (*kind) put(line, *kind++);
}

void line_word(hwb_line *line, const char *word) {
    put(line, ' ');
    while (*word) {
        char c = *word++;
        put(line, (c > ' ' && c != '@' && c != '#' && c < 127) ? c : '_');
    }
}

static void put_u32(hwb_line *line, uint32_t value) {
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n) put(line, digits[--n]);
}

void line_u32(hwb_line *line, uint32_t value) {
    put(line, ' ');
    put_u32(line, value);
}

void line_hex(hwb_line *line, const uint8_t *bytes, uint32_t count) {
    static const char hex[] = "0123456789abcdef";
    put(line, ' ');
    for (uint32_t i = 0; i < count; i++) {
        put(line, hex[bytes[i] >> 4]);
        put(line, hex[bytes[i] & 15]);
    }
}

void line_end(hwb_line *line) {
    static const char hex[] = "0123456789abcdef";
    uint32_t crc = hwb_crc32((const uint8_t *)line->text + 1, line->length - 1);
    line->text[line->length++] = '#';
    for (int shift = 28; shift >= 0; shift -= 4) line->text[line->length++] = hex[(crc >> shift) & 15];
    line->text[line->length++] = '\n';
    board_write(line->text, line->length);
}

#ifndef HWB_CLOCK_SETUP_MAY_FAIL /* build.py always defines it; a build without the board's defines stops */
#define HWB_CLOCK_SETUP_MAY_FAIL 0
#endif

void report_clock(uint32_t hz, const char *failed, const hwb_setting *settings, uint32_t count) {
    hwb_line line;
    line_begin(&line, "CLOCK");
    line_u32(&line, hz);
    line_word(&line, failed ? failed : "ok");
    for (uint32_t i = 0; i < count; i++) {
        line_word(&line, settings[i].name);
        put(&line, '=');
        put_u32(&line, settings[i].value);
    }
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
