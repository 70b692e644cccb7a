/* The benchmark loop, the same on every board: read the run header and the plan the host placed at
 * HWB_RUN_ADDRESS, validate the plan, fill the inputs from the seeded generator the host
 * reproduces, run one warm-up and `repeats` measured inferences (whole, then layer by layer), and
 * print counts, outputs and the stack high-water mark in the line protocol (protocol.h).
 *
 * Run header (16 bytes, little-endian), followed by the plan:
 *   magic "HWBR", seed, repeats, plan size (all uint32).
 * The host puts the run image at the start of the arena's SRAM when it fits there beside the arena
 * the plan needs (on a real board the debugger writes SRAM faster than it programs flash), and the
 * arena then follows it; else at the plan address. The firmware looks in SRAM first: the host
 * clears that header when it uses the plan address. */
#include <stdint.h>

#include "board.h"
#include "hwb_runtime.h"
#include "protocol.h"

#define RUN_MAGIC 0x52425748u /* "HWBR" */
#define MAX_REPEATS 100u

typedef struct {
    uint32_t magic, seed, repeats, plan_size;
} run_header;

extern uint8_t __arena_start, __arena_end;
uint32_t stack_used(void);

/* The run header the host placed, and the arena beside it. */
static const run_header *find_run(uint8_t **arena, uint32_t *capacity) {
    const run_header *in_sram = (const run_header *)&__arena_start;
    uint32_t room = (uint32_t)(&__arena_end - &__arena_start);
    if (in_sram->magic == RUN_MAGIC && in_sram->plan_size < room) {
        uint32_t used = (uint32_t)(sizeof(run_header) + in_sram->plan_size + 15u) & ~15u;
        if (used < room) {
            *arena = &__arena_start + used;
            *capacity = room - used;
            return in_sram;
        }
    }
    *arena = &__arena_start;
    *capacity = room;
    return (const run_header *)HWB_RUN_ADDRESS;
}

static void report_error(uint32_t code, const char *what) {
    hwb_line line;
    line_begin(&line, "ERROR");
    line_u32(&line, code);
    line_word(&line, what);
    line_end(&line);
}

/* xorshift32: the host's firmware_runner/protocol.py `input_bytes` produces the same sequence. */
static uint32_t next_random(uint32_t *state) {
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Every input byte is the top byte of the next number; float32 inputs take 4 such bytes' value
 * as int8 scaled by 1/32 (a spread of -4..4 that the host reproduces exactly). */
static void fill_inputs(const hwb_context *ctx, uint32_t seed) {
    uint32_t state = seed ? seed : 1u;
    for (uint32_t i = 0; i < ctx->input_count; i++) {
        hwb_tensor t;
        hwb_io(ctx, HWB_INPUT, i, &t);
        if (t.dtype == HWB_FLOAT32) {
            float *values = (float *)t.data;
            for (uint32_t k = 0; k < t.nbytes / 4; k++) values[k] = (float)(int8_t)(next_random(&state) >> 24) / 32.0f;
        } else {
            uint8_t *bytes = (uint8_t *)t.data;
            for (uint32_t k = 0; k < t.nbytes; k++) bytes[k] = (uint8_t)(next_random(&state) >> 24);
        }
    }
}

/* The fewest ticks two back-to-back counter reads ever show: the cost the host subtracts. */
static uint32_t calibrate(void) {
    uint32_t best = 0xFFFFFFFFu;
    for (int i = 0; i < 16; i++) {
        uint32_t t0 = board_ticks();
        uint32_t t1 = board_ticks();
        if (t1 - t0 < best) best = t1 - t0;
    }
    return best;
}

static void report_counts(const char *kind, uint32_t run, uint32_t step, uint32_t ticks) {
    hwb_line line;
    line_begin(&line, kind);
    line_u32(&line, run);
    line_u32(&line, step);
    line_u32(&line, ticks);
    line_end(&line);
}

static void report_outputs(const hwb_context *ctx) {
    for (uint32_t i = 0; i < ctx->output_count; i++) {
        hwb_tensor t;
        hwb_io(ctx, HWB_OUTPUT, i, &t);
        for (uint32_t offset = 0; offset < t.nbytes; offset += 64) {
            hwb_line line;
            line_begin(&line, "OUT");
            line_u32(&line, i);
            line_u32(&line, offset);
            line_hex(&line, (const uint8_t *)t.data + offset, t.nbytes - offset < 64 ? t.nbytes - offset : 64);
            line_end(&line);
        }
    }
}

/* The sizes of the runtime's decoded-table entries on this target, as absolute symbols of the image
 * (no bytes): the host reads them to know the memory a plan needs here (build.py, HWB_TABLE_SIZE). */
static void publish_table_sizes(void) {
    __asm__(".global hwb_decoded_op_size\n.set hwb_decoded_op_size, %c0\n"
            ".global hwb_tensor_size\n.set hwb_tensor_size, %c1"
            ::"i"(sizeof(hwb_decoded_op)), "i"(sizeof(hwb_tensor)));
}

int main(void) {
    publish_table_sizes();
    board_init();
    hwb_line line;
    line_begin(&line, "HELLO");
    line_u32(&line, HWB_PROTOCOL_VERSION);
    line_word(&line, HWB_FIRMWARE_HASH);
    line_end(&line);

    uint8_t *arena;
    uint32_t capacity;
    const run_header *run = find_run(&arena, &capacity);
    if (run->magic != RUN_MAGIC || run->repeats == 0 || run->repeats > MAX_REPEATS) {
        report_error(1, "no valid run header at the plan address");
        return 1;
    }
    hwb_context ctx;
    hwb_status status = hwb_load(&ctx, run + 1, run->plan_size, arena, capacity);
    if (status != HWB_OK) {
        report_error(10 + (uint32_t)status, hwb_status_name(status));
        return 2;
    }
    line_begin(&line, "PLAN");
    line_u32(&line, ctx.op_count);
    line_u32(&line, ctx.arena_size);
    line_u32(&line, capacity);
    line_u32(&line, run->plan_size);
    line_end(&line);

    uint32_t cal = calibrate();
    line_begin(&line, "CAL");
    line_u32(&line, cal);
    line_end(&line);

    fill_inputs(&ctx, run->seed);
    status = hwb_invoke(&ctx); /* warm-up */
    for (uint32_t r = 0; r < run->repeats && status == HWB_OK; r++) {
        fill_inputs(&ctx, run->seed); /* the graph's input buffer may have been reused in place */
        uint32_t t0 = board_ticks();
        status = hwb_invoke(&ctx);
        uint32_t t1 = board_ticks();
        report_counts("TOTAL", r, 0, t1 - t0);
        fill_inputs(&ctx, run->seed);
        for (uint32_t i = 0; i < ctx.op_count && status == HWB_OK; i++) {
            t0 = board_ticks();
            status = hwb_invoke_op(&ctx, i);
            t1 = board_ticks();
            report_counts("LAYER", r, i, t1 - t0);
        }
    }
    if (status != HWB_OK) {
        report_error(10 + (uint32_t)status, hwb_status_name(status));
        return 2;
    }
    report_outputs(&ctx);
    line_begin(&line, "STACK");
    line_u32(&line, stack_used());
    line_end(&line);
    line_begin(&line, "DONE");
    line_end(&line);
    return 0;
}
