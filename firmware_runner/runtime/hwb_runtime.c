/* The plan interpreter: checks a plan once in hwb_load, then runs its ops in order.
 * Byte layout (all little-endian; firmware_runner/compiler/plan.py writes it):
 *   header (48 B): magic u32, version u16, header_size u16, total_size u32, crc32 u32 (of bytes
 *     16..total_size), arena_size u32, tensor/op/input/output counts u16 x4, tensors_offset u32,
 *     ops_offset u32, io_offset u32, data_offset u32, data_size u32
 *   tensor record (44 B, hwb_tensor_record): dims i32 x4, rank i32, dtype i32, zero_point i32,
 *     scale f32, nbytes u32, offset u32, location u32 (0 arena, 1 plan)
 *   op record (28 B, hwb_op_record): code u16, input_count u8, output_count u8, graph_index u16, 0 u16,
 *     operands_offset u32 (u16 tensor indices, inputs then outputs), params_offset u32, params_size u32,
 *     scratch_offset u32 (in the arena), scratch_size u32
 *   io table: input_count then output_count u16 tensor indices
 *   data section: operand lists, parameter structs and constant tensors.
 * Records are read in place, so every table is 4-byte aligned. hwb_load decodes each op once, into the
 * table at the start of the caller's memory (HWB_MEMORY_SIZE), so that an invoke only calls kernels.
 * Each kernel's operands and parameter struct are documented in its file (kernels/); a change to any
 * of them, or to the layout above, is a new HWB_PLAN_VERSION (2: FULLY_CONNECTED's scales as integer
 * mantissas and exponents; 3: native records read in place, per-op scratch buffers; 4: kernel paths in
 * the conv family's parameters, their fast paths' packed operands). */
#include "hwb_runtime.h"

#include <string.h>

#include "hwb_ops.h"

enum { LOCATION_ARENA = 0, LOCATION_PLAN = 1 };

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint32_t hwb_crc32(const uint8_t *data, uint32_t size) {
    uint32_t crc = 0xFFFFFFFFu; /* CRC-32 (IEEE, reflected), the one zlib computes */
    for (uint32_t i = 0; i < size; i++) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static uint32_t element_size(int32_t dtype) {
    switch (dtype) {
        case HWB_INT8: return 1;
        case HWB_INT32: return 4;
        case HWB_FLOAT32: return 4;
        default: return 0;
    }
}

/* [offset, offset + size) lies inside [start, start + length), computed without overflow. */
static int inside(uint32_t offset, uint64_t size, uint32_t start, uint32_t length) {
    return offset >= start && (uint64_t)offset + size <= (uint64_t)start + length;
}

static hwb_status check_tensor(const hwb_context *ctx, uint32_t i, uint32_t data_offset, uint32_t data_size) {
    const hwb_tensor_record *r = &ctx->tensors[i];
    uint32_t size = element_size(r->dtype);
    if (size == 0 || r->rank < 0 || r->rank > HWB_MAX_RANK) return HWB_ERR_TENSOR;
    uint64_t count = 1;
    for (int32_t d = 0; d < HWB_MAX_RANK; d++) {
        if (d < r->rank ? r->dims[d] < 1 : r->dims[d] != 0) return HWB_ERR_TENSOR;
        if (d < r->rank) count *= (uint64_t)r->dims[d];
        if (count > 0x7FFFFFFFu) return HWB_ERR_TENSOR;
    }
    if ((uint64_t)r->nbytes != count * size) return HWB_ERR_TENSOR;
    if (r->offset % size != 0) return HWB_ERR_LAYOUT;
    if (r->location == LOCATION_ARENA) return inside(r->offset, r->nbytes, 0, ctx->arena_size) ? HWB_OK : HWB_ERR_ARENA;
    if (r->location == LOCATION_PLAN) return inside(r->offset, r->nbytes, data_offset, data_size) ? HWB_OK : HWB_ERR_LAYOUT;
    return HWB_ERR_TENSOR;
}

static int in_arena(const hwb_context *ctx, uint32_t tensor) {
    return tensor < ctx->tensor_count && ctx->tensors[tensor].location == LOCATION_ARENA;
}

static void decode_tensor(const hwb_context *ctx, uint32_t index, hwb_tensor *t) {
    if (index == HWB_NO_TENSOR) {
        memset(t, 0, sizeof *t);
        return;
    }
    const hwb_tensor_record *r = &ctx->tensors[index];
    /* Field by field: straight-line loads and stores, where a memcpy of the prefix becomes a loop. */
    t->dims[0] = r->dims[0];
    t->dims[1] = r->dims[1];
    t->dims[2] = r->dims[2];
    t->dims[3] = r->dims[3];
    t->rank = r->rank;
    t->dtype = r->dtype;
    t->zero_point = r->zero_point;
    t->scale = r->scale;
    t->nbytes = r->nbytes;
    /* Constants live in the plan, which kernels only read; the cast drops const for one struct type. */
    t->data = r->location == LOCATION_ARENA ? (void *)(ctx->arena + r->offset) : (void *)(uintptr_t)(ctx->plan + r->offset);
}

/* The operands of a checked op record, as its kernel sees them. */
static void decode_op(const hwb_context *ctx, const hwb_op_record *r, hwb_tensor *inputs, hwb_tensor *outputs,
                      hwb_op_args *args) {
    const uint16_t *operands = (const uint16_t *)(const void *)(ctx->plan + r->operands);
    for (uint32_t k = 0; k < r->input_count; k++) decode_tensor(ctx, operands[k], &inputs[k]);
    for (uint32_t k = 0; k < r->output_count; k++) decode_tensor(ctx, operands[r->input_count + k], &outputs[k]);
    args->inputs = inputs;
    args->outputs = outputs;
    args->input_count = r->input_count;
    args->output_count = r->output_count;
    args->params = ctx->plan + r->params;
    args->params_size = r->params_size;
    args->scratch = r->scratch_size ? ctx->arena + r->scratch_offset : 0;
    args->scratch_size = r->scratch_size;
}

/* Checks op i and decodes it into `op`, its operands into `operands`. */
static hwb_status check_op(const hwb_context *ctx, uint32_t i, uint32_t data_offset, uint32_t data_size,
                           hwb_decoded_op *op, hwb_tensor *operands) {
    const hwb_op_record *r = &ctx->ops[i];
    uint32_t inputs = r->input_count, outputs = r->output_count;
    if (r->code >= HWB_OP_END || hwb_kernels[r->code].run == 0 || r->reserved != 0) return HWB_ERR_OP;
    if (r->operands % 2 != 0 || !inside(r->operands, 2u * (inputs + outputs), data_offset, data_size)) return HWB_ERR_LAYOUT;
    if (r->params % 4 != 0 || !inside(r->params, r->params_size, data_offset, data_size)) return HWB_ERR_LAYOUT;
    if (r->scratch_offset % 4 != 0 || (r->scratch_size == 0 && r->scratch_offset != 0)) return HWB_ERR_LAYOUT;
    if (!inside(r->scratch_offset, r->scratch_size, 0, ctx->arena_size)) return HWB_ERR_ARENA;
    const uint16_t *indices = (const uint16_t *)(const void *)(ctx->plan + r->operands);
    for (uint32_t k = 0; k < inputs; k++)
        if (indices[k] != HWB_NO_TENSOR && indices[k] >= ctx->tensor_count) return HWB_ERR_OP;
    for (uint32_t k = inputs; k < inputs + outputs; k++)
        if (!in_arena(ctx, indices[k])) return HWB_ERR_OP; /* never write into the plan */
    decode_op(ctx, r, operands, operands + inputs, &op->args);
    op->run = hwb_kernels[r->code].run;
    return hwb_kernels[r->code].check(&op->args);
}

/* The header and the sections' bounds: what is read before any record. Fills ctx's plan fields. */
static hwb_status read_plan(hwb_context *ctx, const uint8_t *p, uint32_t plan_size, uint32_t *data_offset,
                            uint32_t *data_size) {
    if (((uintptr_t)p & 3u) != 0) return HWB_ERR_LAYOUT;
    if (plan_size < HWB_HEADER_SIZE) return HWB_ERR_PLAN_SIZE;
    uint32_t magic;
    memcpy(&magic, p, sizeof magic); /* as records are read: natively */
    if (magic != HWB_PLAN_MAGIC || rd32(p) != HWB_PLAN_MAGIC) return HWB_ERR_MAGIC;
    if (rd16(p + 4) != HWB_PLAN_VERSION || rd16(p + 6) != HWB_HEADER_SIZE) return HWB_ERR_VERSION;
    uint32_t total = rd32(p + 8);
    if (total < HWB_HEADER_SIZE || total > plan_size) return HWB_ERR_PLAN_SIZE;
    if (hwb_crc32(p + 16, total - 16) != rd32(p + 12)) return HWB_ERR_CRC;

    ctx->plan = p;
    ctx->plan_size = total;
    ctx->arena_size = rd32(p + 16);
    ctx->tensor_count = rd16(p + 20);
    ctx->op_count = rd16(p + 22);
    ctx->input_count = rd16(p + 24);
    ctx->output_count = rd16(p + 26);
    uint32_t tensors = rd32(p + 28), ops = rd32(p + 32), io = rd32(p + 36);
    *data_offset = rd32(p + 40);
    *data_size = rd32(p + 44);
    if (tensors % 4 || ops % 4 || io % 2 ||
        !inside(tensors, (uint64_t)ctx->tensor_count * sizeof(hwb_tensor_record), HWB_HEADER_SIZE, total - HWB_HEADER_SIZE) ||
        !inside(ops, (uint64_t)ctx->op_count * sizeof(hwb_op_record), HWB_HEADER_SIZE, total - HWB_HEADER_SIZE) ||
        !inside(io, 2u * ((uint64_t)ctx->input_count + ctx->output_count), HWB_HEADER_SIZE, total - HWB_HEADER_SIZE) ||
        !inside(*data_offset, *data_size, HWB_HEADER_SIZE, total - HWB_HEADER_SIZE))
        return HWB_ERR_LAYOUT;
    ctx->tensors = (const hwb_tensor_record *)(const void *)(p + tensors);
    ctx->ops = (const hwb_op_record *)(const void *)(p + ops);
    ctx->io = (const uint16_t *)(const void *)(p + io);
    return HWB_OK;
}

/* The table's size: every op's operand counts within the runtime's limits, then HWB_TABLE_SIZE. */
static hwb_status table_size(const hwb_context *ctx, uint64_t *size) {
    uint64_t operands = 0;
    for (uint32_t i = 0; i < ctx->op_count; i++) {
        const hwb_op_record *r = &ctx->ops[i];
        if (r->input_count > HWB_MAX_INPUTS || r->output_count > HWB_MAX_OUTPUTS || r->output_count == 0) return HWB_ERR_OP;
        operands += (uint64_t)r->input_count + r->output_count;
    }
    *size = HWB_TABLE_SIZE((uint64_t)ctx->op_count, operands);
    return HWB_OK;
}

hwb_status hwb_memory_size(const void *plan, uint32_t plan_size, uint32_t *size) {
    if (plan == 0 || size == 0) return HWB_ERR_ARGUMENT;
    hwb_context ctx;
    uint32_t data_offset, data_size;
    uint64_t table = 0;
    hwb_status status = read_plan(&ctx, (const uint8_t *)plan, plan_size, &data_offset, &data_size);
    if (status == HWB_OK) status = table_size(&ctx, &table);
    if (status == HWB_OK && table + ctx.arena_size > 0xFFFFFFFFu) status = HWB_ERR_ARENA;
    *size = status == HWB_OK ? (uint32_t)(table + ctx.arena_size) : 0;
    return status;
}

hwb_status hwb_load(hwb_context *ctx, const void *plan, uint32_t plan_size, void *memory, uint32_t memory_size) {
    if (ctx == 0 || plan == 0) return HWB_ERR_ARGUMENT;
    memset(ctx, 0, sizeof *ctx);
    uint32_t data_offset, data_size;
    uint64_t table = 0;
    hwb_status status = read_plan(ctx, (const uint8_t *)plan, plan_size, &data_offset, &data_size);
    if (status == HWB_OK) status = table_size(ctx, &table);
    if (status == HWB_OK && (table + ctx->arena_size > memory_size || (memory == 0 && table + ctx->arena_size > 0) ||
                             ((uintptr_t)memory & (HWB_ARENA_ALIGNMENT - 1u)) != 0))
        status = HWB_ERR_ARENA;
    hwb_decoded_op *ops = (hwb_decoded_op *)memory; /* NULL only for a plan of no ops and no arena */
    if (status == HWB_OK && memory != 0) {
        ctx->table = ops;
        ctx->arena = (uint8_t *)memory + (size_t)table;
    }
    for (uint32_t i = 0; status == HWB_OK && i < ctx->tensor_count; i++) status = check_tensor(ctx, i, data_offset, data_size);
    for (uint32_t i = 0; status == HWB_OK && i < ctx->input_count + ctx->output_count; i++)
        if (!in_arena(ctx, ctx->io[i])) status = HWB_ERR_OP;
    for (uint32_t i = 0, decoded = 0; status == HWB_OK && i < ctx->op_count; i++) {
        hwb_tensor *operands = (hwb_tensor *)(void *)(ops + ctx->op_count) + decoded; /* after the ops */
        status = check_op(ctx, i, data_offset, data_size, &ops[i], operands);
        decoded += ctx->ops[i].input_count + ctx->ops[i].output_count;
    }
    if (status != HWB_OK) memset(ctx, 0, sizeof *ctx); /* a refused plan leaves nothing runnable */
    return status;
}

hwb_status hwb_invoke_op(const hwb_context *ctx, uint32_t index) {
    if (ctx == 0 || ctx->plan == 0 || index >= ctx->op_count) return HWB_ERR_ARGUMENT;
    const hwb_decoded_op *op = &ctx->table[index];
    return op->run(&op->args);
}

hwb_status hwb_invoke(const hwb_context *ctx) {
    if (ctx == 0 || ctx->plan == 0) return HWB_ERR_ARGUMENT;
    /* Each op through the public entry, not an inlined copy: a whole run then costs what its ops cost
     * when a caller runs them one by one (as the benchmark does to count each layer), plus this loop. */
    hwb_status (*volatile invoke_op)(const hwb_context *, uint32_t) = hwb_invoke_op;
    for (uint32_t i = 0; i < ctx->op_count; i++) {
        hwb_status status = invoke_op(ctx, i);
        if (status != HWB_OK) return status;
    }
    return HWB_OK;
}

hwb_status hwb_io(const hwb_context *ctx, int which, uint32_t index, hwb_tensor *tensor) {
    if (ctx == 0 || ctx->plan == 0 || tensor == 0 || (which != HWB_INPUT && which != HWB_OUTPUT)) return HWB_ERR_ARGUMENT;
    if (index >= (which == HWB_INPUT ? ctx->input_count : ctx->output_count)) return HWB_ERR_ARGUMENT;
    decode_tensor(ctx, ctx->io[which == HWB_OUTPUT ? ctx->input_count + index : index], tensor);
    return HWB_OK;
}

hwb_status hwb_op_info(const hwb_context *ctx, uint32_t index, uint32_t *code, uint32_t *graph_index) {
    if (ctx == 0 || ctx->plan == 0 || index >= ctx->op_count || code == 0 || graph_index == 0) return HWB_ERR_ARGUMENT;
    *code = ctx->ops[index].code;
    *graph_index = ctx->ops[index].graph_index;
    return HWB_OK;
}

const char *hwb_status_name(hwb_status status) {
    static const char *const names[] = {
        "ok", "plan size", "bad magic", "unsupported version", "CRC mismatch", "layout", "arena",
        "bad tensor", "bad op", "bad parameters", "shape mismatch", "bad argument",
    };
    return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown status";
}

uint32_t hwb_context_size(void) { return (uint32_t)sizeof(hwb_context); }

int32_t hwb_flat_size(const hwb_tensor *t) {
    int32_t n = 1;
    for (int32_t d = 0; d < t->rank; d++) n *= t->dims[d];
    return n;
}

int hwb_same_shape(const hwb_tensor *a, const hwb_tensor *b) {
    if (a->rank != b->rank) return 0;
    for (int32_t d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return 0;
    return 1;
}

int hwb_args_match(const hwb_op_args *args, uint32_t inputs, uint32_t outputs, uint32_t params_size) {
    return args->input_count == inputs && args->output_count == outputs && args->params_size == params_size &&
           (params_size == 0 || args->params != 0);
}

int hwb_is_s8(const hwb_tensor *t) { return t->data != 0 && t->dtype == HWB_INT8; }

int hwb_valid_s8(const hwb_tensor *t) {
    if (!hwb_is_s8(t) || t->rank < 0 || t->rank > HWB_MAX_RANK) return 0;
    uint64_t count = 1;
    for (int32_t d = 0; d < t->rank; d++) {
        if (t->dims[d] < 1) return 0;
        count *= (uint64_t)t->dims[d];
        if (count > 0x7FFFFFFFu) return 0;
    }
    return count == t->nbytes;
}

int hwb_same_s8(const hwb_tensor *in, const hwb_tensor *out) {
    return hwb_is_s8(in) && hwb_is_s8(out) && hwb_same_shape(in, out) && in->nbytes == out->nbytes;
}
