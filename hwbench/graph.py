"""The graph IR every part of hwbench works on: one subgraph of tensors and operators.

Tensors are referred to by their index in `Graph.tensors`; an absent optional operator input
(TFLite's -1) is kept as -1 so operand positions stay meaningful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

# The operators the IR knows: the ones the hwbench runtime executes.
KNOWN_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
    "ADD", "SUB", "MUL",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
    "PAD", "RESHAPE", "SQUEEZE", "TRANSPOSE", "CONCATENATION",
    "SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "HARD_SWISH",
    "RELU", "RELU6", "LEAKY_RELU",
    "QUANTIZE", "DEQUANTIZE", "RESIZE_NEAREST_NEIGHBOR",
})

NO_TENSOR = -1


@dataclass(eq=False)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or per channel along `axis`."""

    scale: np.ndarray  # float32, one entry per tensor or per channel
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(eq=False)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # a numpy dtype name: "int8", "int32", "float32", ...
    quantization: Quantization | None = None
    data: np.ndarray | None = None  # constant contents (weights, biases, shapes), else None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(eq=False)
class Op:
    type: str  # TFLite builtin operator name, e.g. "CONV_2D"
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    name: str = ""

    def input_tensors(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.inputs if i != NO_TENSOR]

    def output_tensors(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]

    def activation_inputs(self, op: Op) -> list[Tensor]:
        """The op's inputs that are computed at run time (in SRAM), not constants (in flash)."""
        return [t for t in self.input_tensors(op) if not t.is_constant]

    def constant_inputs(self, op: Op) -> list[Tensor]:
        return [t for t in self.input_tensors(op) if t.is_constant]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.type] = counts.get(op.type, 0) + 1
        return counts
