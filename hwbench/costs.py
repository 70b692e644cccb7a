"""Per-layer cost figures computed from the graph IR, once, for every other part to use.

MACs follow the convention of the MLPerf Tiny and μNAS figures: a convolution or fully connected
layer counts one MAC per weight use; pooling counts one per window element and output; an
elementwise ADD/SUB/MUL one per output element; MEAN one per input element; everything else
(reshapes, activations, softmax, requantization) counts none.
"""

from __future__ import annotations

from dataclasses import dataclass

from hwbench.graph import Graph, Op


@dataclass(frozen=True)
class LayerCost:
    index: int
    op: str
    input_shapes: tuple[tuple[int, ...], ...]  # activation inputs only
    output_shapes: tuple[tuple[int, ...], ...]
    macs: int
    weight_bytes: int  # constant operands (weights, biases, shape tensors) kept in flash
    activation_bytes: int  # activation inputs + outputs


def op_macs(graph: Graph, op: Op) -> int:
    out = graph.tensors[op.outputs[0]]
    if op.type == "CONV_2D":
        _, kh, kw, cin = graph.tensors[op.inputs[1]].shape
        return out.size * kh * kw * cin
    if op.type == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = graph.tensors[op.inputs[1]].shape
        return out.size * kh * kw
    if op.type == "FULLY_CONNECTED":
        return out.size * graph.tensors[op.inputs[1]].shape[-1]
    if op.type in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return out.size * op.options["filter_height"] * op.options["filter_width"]
    if op.type in ("ADD", "SUB", "MUL"):
        return out.size
    if op.type == "MEAN":
        return graph.tensors[op.inputs[0]].size
    return 0


def layer_costs(graph: Graph) -> list[LayerCost]:
    return [
        LayerCost(
            index=i,
            op=op.type,
            input_shapes=tuple(t.shape for t in graph.activation_inputs(op)),
            output_shapes=tuple(t.shape for t in graph.output_tensors(op)),
            macs=op_macs(graph, op),
            weight_bytes=sum(t.nbytes for t in graph.constant_inputs(op)),
            activation_bytes=sum(t.nbytes for t in graph.activation_inputs(op) + graph.output_tensors(op)),
        )
        for i, op in enumerate(graph.ops)
    ]


@dataclass(frozen=True)
class GraphCost:
    macs: int
    weight_bytes: int  # every constant tensor once, however many ops share it
    activation_bytes: int  # every activation tensor once (not the peak: see the memory scheduler)
    layers: tuple[LayerCost, ...]


def graph_cost(graph: Graph) -> GraphCost:
    layers = layer_costs(graph)
    used = {i for op in graph.ops for i in op.inputs + op.outputs if i >= 0} | set(graph.inputs)
    return GraphCost(
        macs=sum(layer.macs for layer in layers),
        weight_bytes=sum(graph.tensors[i].nbytes for i in used if graph.tensors[i].is_constant),
        activation_bytes=sum(graph.tensors[i].nbytes for i in used if not graph.tensors[i].is_constant),
        layers=tuple(layers),
    )


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) if shape else "scalar"

