/* hwbench runtime: executes a plan (see firmware_runner/compiler/plan.py for the byte layout) in
 * caller-provided memory. C99, no dynamic allocation, no globals: all state is in hwb_context and
 * that memory.
 *
 *   hwb_context ctx;
 *   if (hwb_load(&ctx, plan, plan_size, memory, memory_size) != HWB_OK) ...  checks the whole plan, once
 *   hwb_io(&ctx, HWB_INPUT, 0, &t);  fill t.data
 *   for (i = 0; i < ctx.op_count; i++) hwb_invoke_op(&ctx, i);            or hwb_invoke(&ctx)
 *   hwb_io(&ctx, HWB_OUTPUT, 0, &t); read t.data
 */
#ifndef HWB_RUNTIME_H
#define HWB_RUNTIME_H

#include <stdint.h>

#define HWB_PLAN_MAGIC 0x50425748u /* "HWBP" little-endian */
#define HWB_PLAN_VERSION 4u
#define HWB_HEADER_SIZE 48u
#define HWB_MAX_RANK 4
#define HWB_MAX_INPUTS 16
#define HWB_MAX_OUTPUTS 4
#define HWB_NO_TENSOR 0xFFFFu

typedef enum {
    HWB_OK = 0,
    HWB_ERR_PLAN_SIZE,     /* the plan is shorter than its header or than it says */
    HWB_ERR_MAGIC,         /* not a plan (or a big-endian machine, which the format does not serve) */
    HWB_ERR_VERSION,       /* a plan of another format version */
    HWB_ERR_CRC,           /* damaged: the CRC32 does not match */
    HWB_ERR_LAYOUT,        /* a section, offset or size reaches outside the plan, or is misaligned */
    HWB_ERR_ARENA,         /* the memory given is too small or misaligned, or a tensor reaches past the arena */
    HWB_ERR_TENSOR,        /* a tensor record is invalid (dtype, rank, dims, byte size) */
    HWB_ERR_OP,            /* an op record is invalid (unknown op, operand counts or indices) */
    HWB_ERR_PARAMS,        /* an op's parameters are the wrong size or out of range */
    HWB_ERR_SHAPE,         /* an op's operand shapes or types do not fit together */
    HWB_ERR_ARGUMENT       /* a call with an index out of range or a NULL pointer */
} hwb_status;

typedef enum { HWB_INT8 = 1, HWB_INT32 = 2, HWB_FLOAT32 = 3 } hwb_dtype;

/* A tensor as a kernel sees it. Constants point into the plan: kernels never write inputs. The
 * fields before `data` are the first bytes of the plan's tensor record, in the same order. */
typedef struct {
    int32_t dims[HWB_MAX_RANK]; /* the first `rank` entries are used, the others are 0 */
    int32_t rank;
    int32_t dtype;
    int32_t zero_point;
    float scale;
    uint32_t nbytes;
    void *data; /* NULL for an absent optional input */
} hwb_tensor;

/* The plan's records, read in place once hwb_load has checked them (the plan is 4-byte aligned and
 * little-endian, as the machines the runtime serves are). */
typedef struct {
    int32_t dims[HWB_MAX_RANK];
    int32_t rank, dtype, zero_point;
    float scale;
    uint32_t nbytes;
    uint32_t offset;   /* in the arena, or from the plan's start */
    uint32_t location; /* 0 arena, 1 plan */
} hwb_tensor_record;

typedef struct {
    uint16_t code;
    uint8_t input_count, output_count;
    uint16_t graph_index, reserved;
    uint32_t operands; /* plan offset of input_count + output_count u16 tensor indices */
    uint32_t params, params_size;
    uint32_t scratch_offset, scratch_size; /* the op's scratch buffer in the arena (size 0: none) */
} hwb_op_record;

/* What the interpreter hands a kernel: operands in the order the plan compiler emitted them, the
 * op's parameter struct (4-byte aligned, `params_size` bytes inside the plan) and its scratch
 * buffer in the arena (4-byte aligned; NULL when scratch_size is 0). A kernel has a check, which
 * hwb_load calls once with everything the plan fixes (counts, dtypes, shapes, parameters,
 * per-channel constants, the scratch size), and a run, which hwb_invoke calls and which checks
 * nothing the check has seen. */
typedef struct {
    const hwb_tensor *inputs;
    const hwb_tensor *outputs;
    uint32_t input_count;
    uint32_t output_count;
    const void *params;
    uint32_t params_size;
    void *scratch;
    uint32_t scratch_size;
} hwb_op_args;

/* An op as hwb_invoke runs it: hwb_load decodes every op once into a table of these (and their
 * operands), so that an invoke only calls kernels. */
typedef struct {
    hwb_status (*run)(const hwb_op_args *args);
    hwb_op_args args;
} hwb_decoded_op;

/* The memory a plan runs in: the table of its `ops` decoded ops and their `operands` tensors in all,
 * then, 16-byte aligned, its arena (activations and scratch buffers at the offsets the arena planner
 * chose: the plan header's arena size, what `hwbench analyze` reports). The arena comes last, so
 * that a kernel reaching past it reaches past the memory. */
#define HWB_ARENA_ALIGNMENT 16u
#define HWB_ALIGN_ARENA(n) (((n) + HWB_ARENA_ALIGNMENT - 1u) / HWB_ARENA_ALIGNMENT * HWB_ARENA_ALIGNMENT)
#define HWB_TABLE_SIZE(ops, operands) \
    HWB_ALIGN_ARENA((ops) * sizeof(hwb_decoded_op) + (operands) * sizeof(hwb_tensor))
#define HWB_MEMORY_SIZE(arena_size, ops, operands) (HWB_TABLE_SIZE(ops, operands) + (arena_size))

typedef struct {
    const uint8_t *plan;
    uint8_t *arena;
    const hwb_decoded_op *table; /* op_count decoded ops, at the memory's start */
    const hwb_tensor_record *tensors;
    const hwb_op_record *ops;
    const uint16_t *io; /* input then output tensor indices */
    uint32_t plan_size;
    uint32_t arena_size;
    uint32_t tensor_count;
    uint32_t op_count;
    uint32_t input_count;
    uint32_t output_count;
} hwb_context;

enum { HWB_INPUT = 0, HWB_OUTPUT = 1 };

/* Checks the plan and decodes it into `memory` (16-byte aligned, at least hwb_memory_size bytes). */
hwb_status hwb_load(hwb_context *ctx, const void *plan, uint32_t plan_size, void *memory, uint32_t memory_size);
/* The memory a plan needs (HWB_MEMORY_SIZE), from its header and op table once they are checked. */
hwb_status hwb_memory_size(const void *plan, uint32_t plan_size, uint32_t *size);
hwb_status hwb_invoke_op(const hwb_context *ctx, uint32_t index);
hwb_status hwb_invoke(const hwb_context *ctx);
hwb_status hwb_io(const hwb_context *ctx, int which, uint32_t index, hwb_tensor *tensor);
/* The plan's op code and the graph op index of the index-th op executed. */
hwb_status hwb_op_info(const hwb_context *ctx, uint32_t index, uint32_t *code, uint32_t *graph_index);
uint32_t hwb_crc32(const uint8_t *data, uint32_t size);
const char *hwb_status_name(hwb_status status);
uint32_t hwb_context_size(void);

/* Helpers for kernels. */
int32_t hwb_flat_size(const hwb_tensor *t);
int hwb_same_shape(const hwb_tensor *a, const hwb_tensor *b);
/* The op has `inputs` inputs, `outputs` outputs and a parameter struct of `params_size` bytes
 * (params not NULL unless params_size is 0): a kernel's first check. */
int hwb_args_match(const hwb_op_args *args, uint32_t inputs, uint32_t outputs, uint32_t params_size);
/* A readable int8 tensor: data not NULL (not an absent optional input), dtype HWB_INT8. */
int hwb_is_s8(const hwb_tensor *t);
/* A readable int8 tensor of rank <= HWB_MAX_RANK whose dims agree with its byte size. */
int hwb_valid_s8(const hwb_tensor *t);
/* Readable int8 input and output of the same shape and byte size: an elementwise op's operands. */
int hwb_same_s8(const hwb_tensor *in, const hwb_tensor *out);

#endif
