/* Runs plan files through the runtime, built with AddressSanitizer and UBSan by test_plan_fuzz.py:
 * each file is loaded into memory of exactly the size it needs and, when the runtime accepts it,
 * every op is invoked on patterned inputs. Any out-of-bounds access or undefined behaviour aborts the process; otherwise
 * it prints how many plans ended with each status ("load <status>" / "run <status>"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hwb_runtime.h"

#define PLAN_CAPACITY (1u << 22)
#define MEMORY_CAPACITY (1u << 22)

int main(int argc, char **argv) {
    /* Heap buffers of exactly the file's and the plan's memory sizes, so ASan sees any byte past them. */
    unsigned load_counts[16] = {0}, run_counts[16] = {0};
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); return 2; }
        uint8_t *plan = malloc(PLAN_CAPACITY);
        size_t size = fread(plan, 1, PLAN_CAPACITY, f);
        fclose(f);
        uint8_t *exact = malloc(size ? size : 1);
        memcpy(exact, plan, size);
        free(plan);
        uint32_t memory_size = 0; /* the table and the arena the plan needs (0 for a plan refused anyway) */
        hwb_memory_size(exact, (uint32_t)size, &memory_size);
        if (memory_size > MEMORY_CAPACITY) memory_size = MEMORY_CAPACITY;
        uint8_t *memory = malloc(memory_size ? memory_size : 1); /* malloc aligns to 16 here */
        hwb_context ctx;
        hwb_status status = hwb_load(&ctx, exact, (uint32_t)size, memory, memory_size);
        load_counts[status & 15]++;
        if (status == HWB_OK) {
            for (uint32_t k = 0; k < ctx.input_count; k++) {
                hwb_tensor t;
                if (hwb_io(&ctx, HWB_INPUT, k, &t) == HWB_OK)
                    for (uint32_t b = 0; b < t.nbytes; b++) ((uint8_t *)t.data)[b] = (uint8_t)(b * 37u + k);
            }
            status = HWB_OK;
            for (uint32_t op = 0; op < ctx.op_count && status == HWB_OK; op++) status = hwb_invoke_op(&ctx, op);
            run_counts[status & 15]++;
        }
        free(memory);
        free(exact);
    }
    for (int s = 0; s < 16; s++) {
        if (load_counts[s]) printf("load %s %u\n", hwb_status_name((hwb_status)s), load_counts[s]);
        if (run_counts[s]) printf("run %s %u\n", hwb_status_name((hwb_status)s), run_counts[s]);
    }
    return 0;
}
