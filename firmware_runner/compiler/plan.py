"""The plan compiler: graph + execution order + arena layout -> the binary plan the C runtime runs.

The byte layout is documented at the top of runtime/hwb_runtime.c, which reads it; this module
writes it. Sections follow the header in this order: tensor table, op table, io table, then the
data section (operand lists, parameter structs, constant tensors, each 16-byte aligned). The CRC32
covers every byte after the CRC field.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hwbench.errors import PlanError
from hwbench.graph import NO_TENSOR, Graph
from hwbench.kernel_paths import REFERENCE, KernelPath, kernel_path
from hwbench.memory import DEFAULT_ALIGNMENT, plan_arena, schedule
from firmware_runner.compiler.codes import op_codes
from firmware_runner.compiler.lowering import LOWERINGS, Lowered, Unsupported

MAGIC = 0x50425748  # "HWBP"
VERSION = 4
HEADER = struct.Struct("<IHHII IHHHH IIIII".replace(" ", ""))
TENSOR = struct.Struct("<4iiiifIII")  # hwb_tensor_record
OP = struct.Struct("<HBBHHIIIII")  # hwb_op_record
DTYPES = {"int8": 1, "int32": 2, "float32": 3}
ARENA, IN_PLAN = 0, 1
PLAN_NO_TENSOR = 0xFFFF
MAX_RANK, MAX_INPUTS, MAX_OUTPUTS = 4, 16, 4
SECTION_ALIGNMENT = 16


@dataclass(frozen=True)
class PlanOp:
    graph_index: int  # the op's index in the graph
    type: str  # the graph op type, e.g. "SQUEEZE"
    kernel: str  # the runtime kernel that runs it, e.g. "RESHAPE"
    outputs: tuple[int, ...]  # graph tensor indices it writes
    path: str = REFERENCE.name  # the kernel's path (hwbench.kernel_paths)
    scratch_bytes: int = 0  # its scratch buffer in the arena
    operands: int = 0  # inputs and outputs in its record: the runtime decodes each once (HWB_MEMORY_SIZE)


@dataclass(frozen=True)
class TensorPlace:
    offset: int  # in the arena
    nbytes: int
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    blob: bytes
    arena_size: int
    ops: tuple[PlanOp, ...]  # in execution order
    inputs: tuple[int, ...]  # graph tensor indices, the graph's order
    outputs: tuple[int, ...]
    places: dict[int, TensorPlace]  # every activation tensor, by graph index

    @property
    def order(self) -> tuple[int, ...]:
        return tuple(op.graph_index for op in self.ops)

    @property
    def scratch_bytes(self) -> int:
        """The largest scratch buffer of any op (0: none)."""
        return max((op.scratch_bytes for op in self.ops), default=0)


def compile_plan(graph: Graph, order: Sequence[int] | None = None, alignment: int = DEFAULT_ALIGNMENT,
                 fast: bool = True) -> Plan:
    """Lower every op of `graph`, run in `order` (the minimum-peak order by default), into a plan
    whose activations and scratch buffers are laid out by the arena planner. Each op takes the
    kernel path hwbench.kernel_paths chooses: its fastest with `fast=True`, the reference path with
    `fast=False` (a board's choice: kernel_paths.fast_paths_for)."""
    if order is None:
        order = schedule(graph).order
    paths = {i: kernel_path(graph, graph.ops[i], fast) for i in order}
    arena = plan_arena(graph, order, alignment=alignment,
                       scratch={i: path.scratch_bytes for i, path in paths.items() if path.scratch_bytes})
    lowered = [_lower(graph, i, paths[i]) for i in order]
    return _Writer(graph, arena.offsets, max(arena.size, 0)).write(order, lowered, paths, arena.scratch)


def _lower(graph: Graph, index: int, path: KernelPath) -> Lowered:
    op = graph.ops[index]
    where = f"{graph.name or 'model'}: operator {index} ({op.type})"
    lowering = LOWERINGS.get(op.type)
    if lowering is None:
        raise PlanError(f"{where} is not supported by the hwbench runtime")
    try:
        # Only an op with a fast path takes the path as a third argument (see lowering/base.py).
        lowered = lowering(graph, op) if path == REFERENCE else lowering(graph, op, path)
    except Unsupported as e:
        raise PlanError(f"{where}: {e} is not supported by the hwbench runtime") from None
    outputs = lowered.outputs if lowered.outputs is not None else op.outputs
    if len(lowered.inputs) > MAX_INPUTS or len(outputs) > MAX_OUTPUTS:
        raise PlanError(f"{where}: {len(lowered.inputs)} inputs and {len(outputs)} outputs; the hwbench runtime "
                        f"handles {MAX_INPUTS} and {MAX_OUTPUTS} at most")
    for tensor in [graph.tensors[t] for t in [*(i for i in lowered.inputs if isinstance(i, int)), *outputs]
                   if t != NO_TENSOR]:
        if len(tensor.shape) > MAX_RANK:
            raise PlanError(f"{where}: tensor {tensor.name!r} has rank {len(tensor.shape)}; "
                            f"the hwbench runtime handles rank {MAX_RANK} at most")
        if tensor.dtype not in DTYPES:  # (a RESHAPE moves any dtype's bytes, but a plan holds only these)
            raise PlanError(f"{where}: {tensor.dtype} tensor {tensor.name!r} is not supported by the hwbench runtime")
    return lowered


class _Writer:
    """Assembles the blob: tensor records are made on first use, constants stored once."""

    def __init__(self, graph: Graph, offsets: dict[int, int], arena_size: int):
        self.graph, self.offsets, self.arena_size = graph, offsets, arena_size
        self.records: list[bytes] = []
        self.index: dict[int, int] = {}  # graph tensor -> plan tensor
        self.data = bytearray()
        self.places: dict[int, TensorPlace] = {}

    def put(self, payload: bytes, alignment: int = SECTION_ALIGNMENT) -> int:
        """Append to the data section; returns the offset within it."""
        self.data += bytes(-len(self.data) % alignment)
        at = len(self.data)
        self.data += payload
        return at

    def tensor(self, graph_index: int) -> int:
        if graph_index == NO_TENSOR:
            return PLAN_NO_TENSOR
        if graph_index not in self.index:
            t = self.graph.tensors[graph_index]
            zp = int(t.quantization.zero_point[0]) if t.quantization is not None else 0
            sc = float(t.quantization.scale[0]) if t.quantization is not None else 0.0
            if t.is_constant:
                self.index[graph_index] = self.constant(t.data, zp, sc)
            else:
                offset = self.offsets[graph_index]
                self.places[graph_index] = TensorPlace(offset, t.nbytes, t.dtype, t.shape)
                self.index[graph_index] = self.record(t.dtype, t.shape, ARENA, offset, zp, sc)
        return self.index[graph_index]

    def constant(self, array: np.ndarray, zp: int = 0, sc: float = 0.0) -> int:
        array = np.ascontiguousarray(array)
        if array.dtype.name not in DTYPES:
            raise PlanError(f"{self.graph.name or 'model'}: {array.dtype} constants are not supported by the "
                            f"hwbench runtime")
        offset = self.put(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        return self.record(array.dtype.name, array.shape, IN_PLAN, offset, zp, sc)

    def record(self, dtype: str, shape: tuple[int, ...], location: int, offset: int, zp: int, sc: float) -> int:
        """A tensor record; a constant's offset is relative to the data section until `write`."""
        if dtype not in DTYPES:
            raise PlanError(f"{self.graph.name or 'model'}: {dtype} tensors are not supported by the hwbench runtime")
        self.records.append((dtype, len(shape), location, list(shape) + [0] * (MAX_RANK - len(shape)), offset,
                             int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, zp, sc))
        return len(self.records) - 1

    def operand(self, operand) -> int:
        return self.constant(operand) if isinstance(operand, np.ndarray) else self.tensor(operand)

    def write(self, order: Sequence[int], lowered: Sequence[Lowered], paths: dict[int, KernelPath],
              scratch: dict[int, tuple[int, int]]) -> Plan:
        g = self.graph
        op_rows, plan_ops = [], []
        for index, low in zip(order, lowered):
            outputs = tuple(low.outputs if low.outputs is not None else g.ops[index].outputs)
            operands = [self.operand(x) for x in low.inputs] + [self.tensor(t) for t in outputs]
            operands_at = self.put(struct.pack(f"<{len(operands)}H", *operands))
            params_at = self.put(low.params)
            scratch_at, scratch_size = scratch.get(index, (0, 0))
            op_rows.append((op_codes()[low.kernel], len(low.inputs), len(outputs), index, operands_at, params_at,
                            len(low.params), scratch_at, scratch_size))
            plan_ops.append(PlanOp(index, g.ops[index].type, low.kernel, outputs, paths[index].name, scratch_size,
                                   len(operands)))
        io = [self.tensor(t) for t in g.inputs] + [self.tensor(t) for t in g.outputs]

        # Sections: header, tensors, ops, io, data. Offsets inside `data` become absolute here.
        tensors_at = HEADER.size
        ops_at = _align(tensors_at + TENSOR.size * len(self.records), 4)
        io_at = _align(ops_at + OP.size * len(op_rows), 4)
        data_at = _align(io_at + 2 * len(io), SECTION_ALIGNMENT)
        blob = bytearray(data_at)
        for i, (dtype, rank, location, dims, offset, nbytes, zp, sc) in enumerate(self.records):
            absolute = offset + data_at if location == IN_PLAN else offset
            TENSOR.pack_into(blob, tensors_at + i * TENSOR.size, *dims, rank, DTYPES[dtype], zp, sc, nbytes, absolute,
                             location)
        for i, (code, n_in, n_out, index, operands_at, params_at, params_size, scratch_at, scratch_size) in \
                enumerate(op_rows):
            OP.pack_into(blob, ops_at + i * OP.size, code, n_in, n_out, index, 0, operands_at + data_at,
                         params_at + data_at, params_size, scratch_at, scratch_size)
        struct.pack_into(f"<{len(io)}H", blob, io_at, *io)
        blob += self.data
        if len(self.records) > 0xFFFE or len(op_rows) > 0xFFFF:
            raise PlanError(f"{g.name or 'model'}: too many tensors or operators for one plan")
        HEADER.pack_into(blob, 0, MAGIC, VERSION, HEADER.size, len(blob), 0, self.arena_size, len(self.records),
                         len(op_rows), len(g.inputs), len(g.outputs), tensors_at, ops_at, io_at, data_at,
                         len(self.data))
        struct.pack_into("<I", blob, 12, zlib.crc32(blob[16:]))
        return Plan(bytes(blob), self.arena_size, tuple(plan_ops), tuple(g.inputs), tuple(g.outputs), self.places)


def blob_arena_size(blob: bytes) -> int:
    """The arena a compiled plan needs, read from its header."""
    return HEADER.unpack_from(blob)[5]


def blob_table_counts(blob: bytes) -> tuple[int, int]:
    """The ops of a compiled plan and their operands in all (inputs and outputs of every op record):
    what the runtime decodes into its table (HWB_TABLE_SIZE)."""
    header = HEADER.unpack_from(blob)
    op_count, ops_at = header[7], header[11]
    records = (OP.unpack_from(blob, ops_at + i * OP.size) for i in range(op_count))
    return op_count, sum(record[1] + record[2] for record in records)


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment
