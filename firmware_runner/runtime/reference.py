"""The ground truth: LiteRT's interpreter with TFLite's reference kernels (BUILTIN_REF)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hwbench.errors import ModelError
from hwbench.graph import Graph


def reference_run(model: bytes, graph: Graph, inputs: Sequence[np.ndarray], all_tensors: bool = False
                  ) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Outputs (graph order) for `inputs` (graph input order); with `all_tensors`, also every
    activation tensor's value by graph tensor index."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interpreter = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                                  experimental_preserve_all_tensors=all_tensors)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise ModelError(f"{graph.name or 'model'}: the TFLite reference interpreter refused it: {e}") from None
    for index, x in zip(graph.inputs, inputs):
        interpreter.set_tensor(index, np.asarray(x).reshape(graph.tensors[index].shape))
    interpreter.invoke()
    outputs = [interpreter.get_tensor(i).copy() for i in graph.outputs]
    tensors = {}
    if all_tensors:
        for op in graph.ops:
            for t in op.outputs:
                tensors[t] = interpreter.get_tensor(t).copy()
    return outputs, tensors
