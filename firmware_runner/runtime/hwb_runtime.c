/* The plan interpreter: validates a plan once in hwb_load, then runs its ops in order.
 * Byte layout (all little-endian; firmware_runner/compiler/plan.py writes it):
 *   header (48 B): magic u32, version u16, header_size u16, total_size u32, crc32 u32 (of bytes
 *     16..total_size), arena_size u32, tensor/op/input/output counts u16 x4, tensors_offset u32,
 *     ops_offset u32, io_offset u32, data_offset u32, data_size u32
 *   tensor record (36 B): dtype u8, rank u8, location u8 (0 arena, 1 plan), 0 u8, dims i32 x4,
 *     offset u32, nbytes u32, zero_point i32, scale f32
 *   op record (20 B): code u16, input_count u8, output_count u8, graph_index u16, 0 u16,
 *     operands_offset u32 (u16 tensor indices, inputs then outputs), params_offset u32, params_size u32
 *   io table: input_count then output_count u16 tensor indices
 *   data section: operand lists, parameter structs and constant tensors.
 * Each kernel's operands and parameter struct are documented in its file (kernels/); a change to
 * any of them, or to the layout above, is a new HWB_PLAN_VERSION (2: FULLY_CONNECTED's scales as
 * integer mantissas and exponents, hwb_double_scale). */
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

static uint32_t element_size(uint32_t dtype) {
    switch (dtype) {
        case HWB_INT8: return 1;
        case HWB_INT32: return 4;
        case HWB_FLOAT32: return 4;
        default: return 0;
    }
}

typedef hwb_status (*kernel_fn)(const hwb_op_args *args);

static kernel_fn kernel_for(uint32_t code) {
    switch (code) {
#define HWB_OP_CASE(code, name, kernel) case code: return kernel;
        HWB_OPS(HWB_OP_CASE)
#undef HWB_OP_CASE
        default: return 0;
    }
}

/* [offset, offset + size) lies inside [start, start + length), computed without overflow. */
static int inside(uint32_t offset, uint64_t size, uint32_t start, uint32_t length) {
    return offset >= start && (uint64_t)offset + size <= (uint64_t)start + length;
}

static const uint8_t *header_field(const hwb_context *ctx, uint32_t at) { return ctx->plan + at; }
static const uint8_t *tensor_record(const hwb_context *ctx, uint32_t i) {
    return ctx->plan + rd32(header_field(ctx, 28)) + i * HWB_TENSOR_RECORD_SIZE;
}
static const uint8_t *op_record(const hwb_context *ctx, uint32_t i) {
    return ctx->plan + rd32(header_field(ctx, 32)) + i * HWB_OP_RECORD_SIZE;
}
static uint32_t io_index(const hwb_context *ctx, int which, uint32_t i) {
    uint32_t at = rd32(header_field(ctx, 36)) + 2u * (which == HWB_OUTPUT ? ctx->input_count + i : i);
    return rd16(ctx->plan + at);
}

static hwb_status check_tensor(const hwb_context *ctx, uint32_t i, uint32_t data_offset, uint32_t data_size) {
    const uint8_t *r = tensor_record(ctx, i);
    uint32_t size = element_size(r[0]), rank = r[1], location = r[2];
    if (size == 0 || rank > HWB_MAX_RANK || r[3] != 0) return HWB_ERR_TENSOR;
    uint64_t count = 1;
    for (uint32_t d = 0; d < HWB_MAX_RANK; d++) {
        int32_t dim = (int32_t)rd32(r + 4 + 4 * d);
        if (d < rank ? dim < 1 : dim != 0) return HWB_ERR_TENSOR;
        if (d < rank) count *= (uint64_t)dim;
        if (count > 0x7FFFFFFFu) return HWB_ERR_TENSOR;
    }
    uint32_t offset = rd32(r + 20), nbytes = rd32(r + 24);
    if ((uint64_t)nbytes != count * size) return HWB_ERR_TENSOR;
    if (offset % size != 0) return HWB_ERR_LAYOUT;
    if (location == LOCATION_ARENA) return inside(offset, nbytes, 0, ctx->arena_size) ? HWB_OK : HWB_ERR_ARENA;
    if (location == LOCATION_PLAN) return inside(offset, nbytes, data_offset, data_size) ? HWB_OK : HWB_ERR_LAYOUT;
    return HWB_ERR_TENSOR;
}

static int in_arena(const hwb_context *ctx, uint32_t tensor) {
    return tensor < ctx->tensor_count && tensor_record(ctx, tensor)[2] == LOCATION_ARENA;
}

static hwb_status check_op(const hwb_context *ctx, uint32_t i, uint32_t data_offset, uint32_t data_size) {
    const uint8_t *r = op_record(ctx, i);
    uint32_t inputs = r[2], outputs = r[3];
    if (kernel_for(rd16(r)) == 0 || inputs > HWB_MAX_INPUTS || outputs > HWB_MAX_OUTPUTS || outputs == 0 ||
        rd16(r + 6) != 0)
        return HWB_ERR_OP;
    uint32_t operands = rd32(r + 8), params = rd32(r + 12), params_size = rd32(r + 16);
    if (operands % 2 != 0 || !inside(operands, 2u * (inputs + outputs), data_offset, data_size)) return HWB_ERR_LAYOUT;
    if (params % 4 != 0 || !inside(params, params_size, data_offset, data_size)) return HWB_ERR_LAYOUT;
    for (uint32_t k = 0; k < inputs; k++) {
        uint32_t t = rd16(ctx->plan + operands + 2 * k);
        if (t != HWB_NO_TENSOR && t >= ctx->tensor_count) return HWB_ERR_OP;
    }
    for (uint32_t k = inputs; k < inputs + outputs; k++)
        if (!in_arena(ctx, rd16(ctx->plan + operands + 2 * k))) return HWB_ERR_OP; /* never write into the plan */
    return HWB_OK;
}

hwb_status hwb_load(hwb_context *ctx, const void *plan, uint32_t plan_size, void *arena, uint32_t arena_size) {
    if (ctx == 0 || plan == 0) return HWB_ERR_ARGUMENT;
    memset(ctx, 0, sizeof *ctx);
    const uint8_t *p = (const uint8_t *)plan;
    if (((uintptr_t)p & 3u) != 0) return HWB_ERR_LAYOUT;
    if (plan_size < HWB_HEADER_SIZE) return HWB_ERR_PLAN_SIZE;
    if (rd32(p) != HWB_PLAN_MAGIC) return HWB_ERR_MAGIC;
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
    if (ctx->arena_size > arena_size || (ctx->arena_size > 0 && arena == 0) || ((uintptr_t)arena & 15u) != 0) {
        memset(ctx, 0, sizeof *ctx);
        return HWB_ERR_ARENA;
    }
    ctx->arena = (uint8_t *)arena;

    uint32_t tensors = rd32(p + 28), ops = rd32(p + 32), io = rd32(p + 36);
    uint32_t data_offset = rd32(p + 40), data_size = rd32(p + 44);
    hwb_status status = HWB_OK;
    if (tensors % 4 || ops % 4 || io % 2 || !inside(tensors, (uint64_t)ctx->tensor_count * HWB_TENSOR_RECORD_SIZE, HWB_HEADER_SIZE, total - HWB_HEADER_SIZE) ||
        !inside(ops, (uint64_t)ctx->op_count * HWB_OP_RECORD_SIZE, HWB_HEADER_SIZE, total - HWB_HEADER_SIZE) ||
        !inside(io, 2u * ((uint64_t)ctx->input_count + ctx->output_count), HWB_HEADER_SIZE, total - HWB_HEADER_SIZE) ||
        !inside(data_offset, data_size, HWB_HEADER_SIZE, total - HWB_HEADER_SIZE))
        status = HWB_ERR_LAYOUT;
    for (uint32_t i = 0; status == HWB_OK && i < ctx->tensor_count; i++) status = check_tensor(ctx, i, data_offset, data_size);
    for (uint32_t i = 0; status == HWB_OK && i < ctx->op_count; i++) status = check_op(ctx, i, data_offset, data_size);
    for (uint32_t i = 0; status == HWB_OK && i < ctx->input_count; i++)
        if (!in_arena(ctx, io_index(ctx, HWB_INPUT, i))) status = HWB_ERR_OP;
    for (uint32_t i = 0; status == HWB_OK && i < ctx->output_count; i++)
        if (!in_arena(ctx, io_index(ctx, HWB_OUTPUT, i))) status = HWB_ERR_OP;
    if (status != HWB_OK) memset(ctx, 0, sizeof *ctx); /* a refused plan leaves nothing runnable */
    return status;
}

static void decode_tensor(const hwb_context *ctx, uint32_t index, hwb_tensor *t) {
    memset(t, 0, sizeof *t);
    if (index == HWB_NO_TENSOR) return;
    const uint8_t *r = tensor_record(ctx, index);
    uint32_t offset = rd32(r + 20);
    /* Constants live in the plan, which kernels only read; the cast drops const for one struct type. */
    t->data = r[2] == LOCATION_ARENA ? (void *)(ctx->arena + offset) : (void *)(uintptr_t)(ctx->plan + offset);
    t->nbytes = rd32(r + 24);
    t->rank = r[1];
    for (int d = 0; d < HWB_MAX_RANK; d++) t->dims[d] = (int32_t)rd32(r + 4 + 4 * d);
    t->dtype = r[0];
    t->zero_point = (int32_t)rd32(r + 28);
    uint32_t bits = rd32(r + 32);
    memcpy(&t->scale, &bits, sizeof t->scale);
}

hwb_status hwb_invoke_op(const hwb_context *ctx, uint32_t index) {
    if (ctx == 0 || ctx->plan == 0 || index >= ctx->op_count) return HWB_ERR_ARGUMENT;
    const uint8_t *r = op_record(ctx, index);
    hwb_tensor inputs[HWB_MAX_INPUTS], outputs[HWB_MAX_OUTPUTS];
    uint32_t input_count = r[2], output_count = r[3], operands = rd32(r + 8);
    for (uint32_t k = 0; k < input_count; k++) decode_tensor(ctx, rd16(ctx->plan + operands + 2 * k), &inputs[k]);
    for (uint32_t k = 0; k < output_count; k++)
        decode_tensor(ctx, rd16(ctx->plan + operands + 2 * (input_count + k)), &outputs[k]);
    hwb_op_args args = {inputs, outputs, input_count, output_count, ctx->plan + rd32(r + 12), rd32(r + 16)};
    return kernel_for(rd16(r))(&args);
}

hwb_status hwb_invoke(const hwb_context *ctx) {
    if (ctx == 0 || ctx->plan == 0) return HWB_ERR_ARGUMENT;
    for (uint32_t i = 0; i < ctx->op_count; i++) {
        hwb_status status = hwb_invoke_op(ctx, i);
        if (status != HWB_OK) return status;
    }
    return HWB_OK;
}

hwb_status hwb_io(const hwb_context *ctx, int which, uint32_t index, hwb_tensor *tensor) {
    if (ctx == 0 || ctx->plan == 0 || tensor == 0 || (which != HWB_INPUT && which != HWB_OUTPUT)) return HWB_ERR_ARGUMENT;
    if (index >= (which == HWB_INPUT ? ctx->input_count : ctx->output_count)) return HWB_ERR_ARGUMENT;
    decode_tensor(ctx, io_index(ctx, which, index), tensor);
    return HWB_OK;
}

hwb_status hwb_op_info(const hwb_context *ctx, uint32_t index, uint32_t *code, uint32_t *graph_index) {
    if (ctx == 0 || ctx->plan == 0 || index >= ctx->op_count || code == 0 || graph_index == 0) return HWB_ERR_ARGUMENT;
    *code = rd16(op_record(ctx, index));
    *graph_index = rd16(op_record(ctx, index) + 4);
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
