"""The reader and IR against the models they came from: Keras layers for generated models, the
published figures for the MLPerf Tiny models."""

from __future__ import annotations

from math import prod

import numpy as np
import pytest

from hwbench.costs import graph_cost, layer_costs
from hwbench.generate.build import convert_int8, keras_model
from hwbench.generate.space import Bounds, sample_architecture
from hwbench.graph import KNOWN_OPS
from hwbench.tflite_reader import parse_tflite, read_tflite
from tests.conftest import MLPERF_TINY

WEIGHTED = {"Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D", "Dense": "FULLY_CONNECTED"}


@pytest.mark.parametrize("name", sorted(MLPERF_TINY))
def test_mlperf_tiny_macs_match_published_figures(mlperf_model, name):
    graph = read_tflite(mlperf_model(name))
    assert graph_cost(graph).macs == MLPERF_TINY[name][1]
    assert {op.type for op in graph.ops} <= KNOWN_OPS


def test_mlperf_quantization_is_read_per_channel_with_axis(mlperf_model):
    graph = read_tflite(mlperf_model("kws"))
    conv = next(op for op in graph.ops if op.type == "CONV_2D")
    depthwise = next(op for op in graph.ops if op.type == "DEPTHWISE_CONV_2D")
    conv_w, dw_w = graph.tensors[conv.inputs[1]], graph.tensors[depthwise.inputs[1]]
    # Conv filters are quantized per output channel (axis 0), depthwise filters along axis 3.
    assert conv_w.quantization.per_channel and conv_w.quantization.axis == 0
    assert len(conv_w.quantization.scale) == conv_w.shape[0]
    assert dw_w.quantization.per_channel and dw_w.quantization.axis == 3
    assert len(dw_w.quantization.scale) == dw_w.shape[3]
    assert conv_w.dtype == "int8" and conv_w.data.shape == conv_w.shape
    bias = graph.tensors[conv.inputs[2]]
    assert bias.dtype == "int32" and bias.is_constant
    assert conv.options["padding"] in ("SAME", "VALID") and conv.options["stride_h"] >= 1
    source = graph.tensors[graph.inputs[0]]
    assert source.dtype == "int8" and not source.quantization.per_channel


def _keras_layer_figures(model) -> list[tuple[str, tuple, int, int]]:
    """(op, output shape, parameter count, MACs) of each weighted Keras layer, from Keras alone."""
    figures = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in WEIGHTED:
            continue
        out_shape = tuple(layer.output.shape)
        kernel = layer.get_weights()[0]
        if kind == "Conv2D":
            macs = prod(out_shape) * prod(kernel.shape[:3])
        elif kind == "DepthwiseConv2D":
            macs = prod(out_shape) * prod(kernel.shape[:2])
        else:
            macs = prod(out_shape) * kernel.shape[0]
        figures.append((WEIGHTED[kind], out_shape, layer.count_params(), macs))
    return figures


@pytest.mark.parametrize("index", range(6))
def test_generated_model_matches_its_keras_model(index):
    rng = np.random.default_rng([2024, index])
    arch, _ = sample_architecture(rng, Bounds())
    model = keras_model(arch, rng)
    graph = parse_tflite(convert_int8(model, tuple(arch["input"]), rng), source=f"gen{index}")

    ir = [(layer.op, layer.output_shapes[0], sum(t.size for t in graph.constant_inputs(op)), layer.macs)
          for layer, op in zip(layer_costs(graph), graph.ops) if layer.op in WEIGHTED.values()]
    assert sorted(ir) == sorted(_keras_layer_figures(model))
    assert tuple(graph.tensors[graph.inputs[0]].shape) == tuple(model.input.shape)
    assert tuple(graph.tensors[graph.outputs[0]].shape) == tuple(model.output.shape)
    assert all(graph.tensors[i].dtype == "int8" for i in graph.inputs + graph.outputs)


def test_weight_bytes_count_shared_constants_once(generated):
    out, entries = generated
    for entry in entries:
        graph = read_tflite(out / entry["file"])
        cost = graph_cost(graph)
        unique = {id(t): t.nbytes for op in graph.ops for t in graph.constant_inputs(op)}
        assert cost.weight_bytes == sum(unique.values())
        assert cost.weight_bytes <= sum(layer.weight_bytes for layer in cost.layers)
        assert cost.activation_bytes >= max(layer.activation_bytes for layer in cost.layers) // 2
