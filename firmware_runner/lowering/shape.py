"""Ops that move bytes without arithmetic: RESHAPE and SQUEEZE (aliases), PAD, TRANSPOSE,
CONCATENATION, RESIZE_NEAREST_NEIGHBOR."""

from __future__ import annotations

from hwbench.graph import Graph, Op
from firmware_runner.lowering.base import Lowered, Unsupported


def lower_reshape(graph: Graph, op: Op) -> Lowered:
    # The shape operand (if any) is already folded into the output tensor's shape.
    data, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if data.dtype != out.dtype:
        raise Unsupported(f"{data.dtype} to {out.dtype}")
    return Lowered("RESHAPE", [op.inputs[0]])


LOWERINGS = {"RESHAPE": lower_reshape, "SQUEEZE": lower_reshape}
