"""What a lowering returns, and the tools every lowering shares.

A lowering turns one graph op into one plan op: the runtime kernel to call (a name from
runtime/hwb_ops.h), its operands and its parameter struct packed as bytes. The lowering of an op
whose kernel has fast paths also takes the hwbench.kernel_paths.KernelPath chosen for it, as a
third argument, when that path is not the reference one. Operands are graph
tensor indices, NO_TENSOR for an absent optional input, or numpy arrays: constants the compiler
derives (per-channel multipliers and shifts), which the plan stores like weights.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from hwbench.graph import Graph, Op, Tensor

Operand = Union[int, np.ndarray]


@dataclass(frozen=True)
class Lowered:
    kernel: str  # an op name of runtime/hwb_ops.h, e.g. "CONV_2D"
    inputs: Sequence[Operand]
    params: bytes = b""  # the kernel's parameter struct, every field 4 bytes (see pack)
    outputs: Sequence[int] | None = None  # graph tensor indices; None: the op's own outputs


class Unsupported(Exception):
    """Raised by a lowering: the op uses something the runtime does not implement. The compiler
    turns it into a PlanError naming the operator and its index; the message says what, e.g.
    "dilation 2x2"."""


def pack(*fields: int | float | np.integer | np.floating) -> bytes:
    """A kernel parameter struct: ints as int32, floats as float32, little-endian, in field order
    (the C struct must declare the same fields in the same order, all int32_t or float)."""
    out = bytearray()
    for f in fields:
        if isinstance(f, (float, np.floating)):
            out += struct.pack("<f", float(f))
        else:
            out += struct.pack("<i", int(f))
    return bytes(out)


def require_dtypes(graph: Graph, op: Op, dtype: str = "int8") -> None:
    """Every activation operand of `op` has `dtype`."""
    for t in graph.activation_inputs(op) + graph.output_tensors(op):
        if t.dtype != dtype:
            raise Unsupported(f"{t.dtype} tensor {t.name!r} (only {dtype} activations)")


def per_tensor(tensor: Tensor, what: str) -> None:
    if tensor.quantization is None or tensor.quantization.per_channel:
        raise Unsupported(f"{what} tensor {tensor.name!r} without per-tensor quantization")


def unary(graph: Graph, op: Op) -> tuple[Tensor, Tensor]:
    """The op's int8 input and output, quantized per tensor, of the same shape."""
    if len(op.inputs) != 1 or len(op.outputs) != 1:
        raise Unsupported(f"{len(op.inputs)} inputs and {len(op.outputs)} outputs (one each expected)")
    require_dtypes(graph, op)
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    per_tensor(x, "input")
    per_tensor(y, "output")
    if tuple(x.shape) != tuple(y.shape):
        raise Unsupported(f"output shape {y.shape} for input shape {x.shape}")
    return x, y


def int32_array(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)
