"""From an architecture spec (see space.py) to the graph IR, without TensorFlow.

The graph is the one the TFLite converter makes of the Keras model build.py builds: the same ops
with the same shapes, options and constant operands (weights are zeros here, of the right shape and
dtype), so MACs, weight bytes, peak memory and latency features are known before any conversion or
training. It follows what the converter does, measured on TF 2.21:
- ReLU and ReLU6 fuse into the op before them; other activations are ops of their own; a standalone
  ReLU (ReLU6) after an op with a fused ReLU (ReLU6) disappears;
- a Flatten of a 1x1 map before a Dense, and a MEAN over a 1x1 map keeping its dimensions, disappear;
- an ADD whose second operand is a (1, 1, 1, C) tensor, C > 1, gets a RESHAPE of it to (C,);
- a CONCATENATION takes no rescaling, so the converter gives every input the output's scale; an
  input made by an op whose output scale is fixed (TANH, LOGISTIC), directly or through ops that keep
  the scale (pooling, transposing, ...), is requantized by a QUANTIZE right after that op;
- ops of the same type, inputs and options are computed once;
- float input and output are a QUANTIZE and a DEQUANTIZE at the model's edges.
Two rewrites it does not follow, so the sampler avoids them: two TRANSPOSEs in a row are merged, and
a PAD with the very padding SAME would add is folded into the VALID convolution after it.
`tests/test_generate.py` checks the graph against the converted model, op by op.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np

from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError
from hwbench.graph import Graph, Op, Tensor
from hwbench.memory import schedule

# Activations a conv, dense or residual fuses; the others become ops of their own.
FUSED_ACTIVATIONS = {None: "NONE", "relu": "RELU", "relu6": "RELU6"}
ACTIVATION_OPS = {"leaky_relu": "LEAKY_RELU", "tanh": "TANH", "hard_swish": "HARD_SWISH", "sigmoid": "LOGISTIC",
                  "relu": "RELU", "relu6": "RELU6"}
LEAKY_RELU_ALPHA = float(np.float32(0.2))  # Keras' default negative slope, as the file stores it
# Ops whose int8 output scale TFLite fixes: a concatenation requantizes them to its own scale, also
# through the ops that keep their input's scale.
FIXED_SCALE_OPS = frozenset({"TANH", "LOGISTIC"})
SAME_SCALE_OPS = frozenset({"MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "TRANSPOSE", "RESHAPE", "SQUEEZE",
                            "RESIZE_NEAREST_NEIGHBOR"})


@dataclass(frozen=True)
class SpecCost:
    macs: int
    weight_bytes: int
    peak_bytes: int  # the minimum-peak execution order's, in-place reuse applied (hwbench.memory)


def conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    return ceil(size / stride) if padding == "same" else (size - kernel) // stride + 1


def mbconv_layers(layer: dict, channels: int) -> list[dict]:
    """The convolutions of an "mbconv" layer reading `channels` channels (its ADD aside)."""
    same = {"padding": "same", "batchnorm": layer.get("batchnorm", False)}
    expand = [{"op": "conv", "filters": channels * layer["expansion"], "kernel": 1, "stride": 1,
               "activation": layer["activation"], **same}] if layer["expansion"] > 1 else []
    return expand + [
        {"op": "dwconv", "kernel": layer["kernel"], "stride": layer["stride"], "multiplier": 1,
         "activation": layer["activation"], **same},
        {"op": "conv", "filters": layer["filters"], "kernel": 1, "stride": 1, "activation": None, **same}]


def mbconv_adds(layer: dict, channels: int) -> bool:
    """Whether an "mbconv" layer reading `channels` channels adds its input (it keeps the shape)."""
    return layer["stride"] == 1 and layer["filters"] == channels


class GraphBuilder:
    """Appends the converter's ops for one spec layer after another; `shape()` and `last_op` are what
    the sampler looks at to choose the next layer."""

    def __init__(self, input_shape: list[int], io: str = "int8"):
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.producer: dict[int, Op] = {}
        self.shared: dict[tuple, int] = {}
        self.io = io
        self.input = self.tensor((1, *input_shape), "float32" if io == "float32" else "int8", "input")
        self.x = self.input if io != "float32" else self.op("QUANTIZE", [self.input], (1, *input_shape))

    # -- tensors and ops ---------------------------------------------------------------------------

    def tensor(self, shape: tuple[int, ...], dtype: str = "int8", name: str = "") -> int:
        self.tensors.append(Tensor(name=name or f"t{len(self.tensors)}", shape=tuple(shape), dtype=dtype))
        return len(self.tensors) - 1

    def weights(self, shape: tuple[int, ...], dtype: str = "int8") -> int:
        index = self.tensor(shape, dtype)
        self.tensors[index].data = np.broadcast_to(np.zeros((), dtype), shape)  # shape and bytes, no memory
        return index

    def ints(self, values) -> int:
        """An int32 operand (axes, a shape, paddings); the converter keeps one tensor per distinct value."""
        data = np.asarray(values, dtype=np.int32)
        key = (data.shape, data.tobytes())
        if key not in self.shared:
            self.shared[key] = self.tensor(data.shape, "int32")
            self.tensors[self.shared[key]].data = data
        return self.shared[key]

    def op(self, op_type: str, inputs: list[int], shape: tuple[int, ...], dtype: str = "int8", **options) -> int:
        for same in self.ops:  # the converter computes an op of the same inputs and options once
            if (same.type, same.inputs, same.options) == (op_type, tuple(inputs), options):
                return same.outputs[0]
        out = self.tensor(shape, dtype)
        op = Op(op_type, tuple(inputs), (out,), options)
        self.ops.append(op)
        self.producer[out] = op
        return out

    @property
    def last_op(self) -> Op | None:
        """The op that made the current output (None: it is the model's input)."""
        return self.producer.get(self.x)

    def shape(self) -> tuple[int, ...]:
        """The current output's shape without the batch dimension."""
        return self.tensors[self.x].shape[1:]

    # -- layers ------------------------------------------------------------------------------------

    def add(self, layer: dict) -> None:
        self.x = self.layer(layer, self.x)

    def layer(self, layer: dict, x: int) -> int:
        apply = getattr(self, f"_{layer.get('op')}", None)
        if apply is None:
            raise HwbenchError(f"architecture spec: unknown layer op {layer.get('op')!r} in {layer}")
        return apply(layer, x)

    def activation(self, x: int, activation: str | None, fused: bool = True) -> int:
        """`x` after `activation`: as it is when the op that made it fused the activation in, or when
        a standalone ReLU or ReLU6 would repeat the clamp that op already applied."""
        if activation is None or (fused and activation in FUSED_ACTIVATIONS):
            return x
        producer = self.producer.get(x)
        if producer is not None and producer.options.get("fused_activation_function") == ACTIVATION_OPS[activation]:
            return x
        extra = {"alpha": LEAKY_RELU_ALPHA} if activation == "leaky_relu" else {}
        return self.op(ACTIVATION_OPS[activation], [x], self.tensors[x].shape, **extra)

    def _conv(self, layer: dict, x: int) -> int:
        _, h, w, c = self.tensors[x].shape
        k, s, f = layer["kernel"], layer["stride"], layer["filters"]
        out = (1, conv_out(h, k, s, layer["padding"]), conv_out(w, k, s, layer["padding"]), f)
        y = self.op("CONV_2D", [x, self.weights((f, k, k, c)), self.weights((f,), "int32")], out,
                    padding=layer["padding"].upper(), stride_h=s, stride_w=s, dilation_h_factor=1,
                    dilation_w_factor=1, fused_activation_function=FUSED_ACTIVATIONS.get(layer["activation"], "NONE"))
        return self.activation(y, layer["activation"])

    def _dwconv(self, layer: dict, x: int) -> int:
        _, h, w, c = self.tensors[x].shape
        k, s, m = layer["kernel"], layer["stride"], layer["multiplier"]
        out = (1, conv_out(h, k, s, layer["padding"]), conv_out(w, k, s, layer["padding"]), c * m)
        y = self.op("DEPTHWISE_CONV_2D", [x, self.weights((1, k, k, c * m)), self.weights((c * m,), "int32")], out,
                    padding=layer["padding"].upper(), stride_h=s, stride_w=s, depth_multiplier=m,
                    dilation_h_factor=1, dilation_w_factor=1,
                    fused_activation_function=FUSED_ACTIVATIONS.get(layer["activation"], "NONE"))
        return self.activation(y, layer["activation"])

    def _pool(self, op_type: str, layer: dict, x: int) -> int:
        _, h, w, c = self.tensors[x].shape
        k, s = layer["size"], layer["stride"]
        out = (1, conv_out(h, k, s, layer["padding"]), conv_out(w, k, s, layer["padding"]), c)
        return self.op(op_type, [x], out, padding=layer["padding"].upper(), stride_h=s, stride_w=s,
                       filter_height=k, filter_width=k, fused_activation_function="NONE")

    def _maxpool(self, layer: dict, x: int) -> int:
        return self._pool("MAX_POOL_2D", layer, x)

    def _avgpool(self, layer: dict, x: int) -> int:
        return self._pool("AVERAGE_POOL_2D", layer, x)

    def _pad(self, layer: dict, x: int) -> int:
        _, h, w, c = self.tensors[x].shape
        top, bottom, left, right = layer["pads"]
        return self.op("PAD", [x, self.ints([[0, 0], [top, bottom], [left, right], [0, 0]])],
                       (1, h + top + bottom, w + left + right, c))

    def _residual(self, layer: dict, x: int) -> int:
        y = self.activation(x, layer.get("preact"), fused=False)  # pre-activation: x itself goes on unchanged
        for inner in layer["body"]:
            y = self.layer(inner, y)
        merge = layer.get("merge", "add")
        if merge == "add":
            return self._add(x, y, layer["activation"])
        return self.op("SUB" if merge == "sub" else "MUL", [x, y], self.tensors[x].shape,
                       fused_activation_function=FUSED_ACTIVATIONS[layer["activation"]])

    def _mbconv(self, layer: dict, x: int) -> int:
        channels = self.tensors[x].shape[-1]
        y = x
        for inner in mbconv_layers(layer, channels):
            y = self.layer(inner, y)
        return self._add(x, y) if mbconv_adds(layer, channels) else y

    def _add(self, x: int, y: int, activation: str | None = None) -> int:
        c = self.tensors[y].shape[-1]
        if self.tensors[y].shape == (1, 1, 1, c) and c > 1:  # the converter adds a (1, 1, 1, C) as a vector
            y = self.op("RESHAPE", [y, self.ints([c])], (c,))
        return self.op("ADD", [x, y], self.tensors[x].shape, fused_activation_function=FUSED_ACTIVATIONS[activation])

    def _requantize(self, x: int) -> None:
        """Before a concatenation takes `x`: if a fixed-scale op made it (through ops that keep the
        scale), that op's output is requantized at once, for every op that reads it."""
        while self.producer.get(x) is not None and self.producer[x].type in SAME_SCALE_OPS:
            x = self.producer[x].inputs[0]
        op = self.producer.get(x)
        if op is None or op.type not in FIXED_SCALE_OPS:
            return
        requantized = self.tensor(self.tensors[x].shape)
        for reader in self.ops:
            reader.inputs = tuple(requantized if i == x else i for i in reader.inputs)
        quantize = Op("QUANTIZE", (x,), (requantized,))
        self.ops.insert(self.ops.index(op) + 1, quantize)
        self.producer[requantized] = quantize

    def _concat(self, layer: dict, x: int) -> int:
        if any(not branch for branch in layer["branches"]):  # x itself is concatenated
            self._requantize(x)
        parts = []
        for branch in layer["branches"]:
            y = x
            for inner in branch:
                y = self.layer(inner, y)
            if branch:
                self._requantize(y)
            parts.append(y)
        _, h, w, _ = self.tensors[x].shape
        channels = sum(self.tensors[p].shape[-1] for p in parts)
        y = self.op("CONCATENATION", parts, (1, h, w, channels), axis=-1, fused_activation_function="NONE")
        return self.activation(y, layer.get("activation"), fused=False)

    def _mean(self, x: int, keepdims: bool) -> int:
        _, h, w, c = self.tensors[x].shape
        if keepdims and h * w == 1:  # the mean of one pixel: nothing to compute
            return x
        return self.op("MEAN", [x, self.ints([1, 2])], (1, 1, 1, c) if keepdims else (1, c), keep_dims=keepdims)

    def _se(self, layer: dict, x: int) -> int:
        c = self.tensors[x].shape[-1]
        squeeze = self._mean(x, keepdims=True)
        hidden = self._conv({"filters": layer["units"], "kernel": 1, "stride": 1, "padding": "valid",
                             "activation": layer["activation"]}, squeeze)
        gate = self._conv({"filters": c, "kernel": 1, "stride": 1, "padding": "valid", "activation": "sigmoid"},
                          hidden)
        return self.op("MUL", [x, gate], self.tensors[x].shape, fused_activation_function="NONE")

    def _context(self, layer: dict, x: int) -> int:
        mean = self._mean(x, keepdims=True)
        if layer["merge"] == "sub":
            return self.op("SUB", [x, mean], self.tensors[x].shape, fused_activation_function="NONE")
        return self._add(x, mean)

    def _transpose(self, layer: dict, x: int) -> int:
        perm = [0, *(p + 1 for p in layer["perm"])]
        shape = self.tensors[x].shape
        return self.op("TRANSPOSE", [x, self.ints(perm)], tuple(shape[p] for p in perm))

    def _upsample(self, layer: dict, x: int) -> int:
        _, h, w, c = self.tensors[x].shape
        f = layer["factor"]
        return self.op("RESIZE_NEAREST_NEIGHBOR", [x, self.ints([h * f, w * f])], (1, h * f, w * f, c),
                       align_corners=False, half_pixel_centers=True)

    def _global_avg(self, layer: dict, x: int) -> int:
        return self._mean(x, keepdims=layer.get("keepdims", False))

    def _flatten(self, layer: dict, x: int) -> int:
        size = self.tensors[x].size
        if self.tensors[x].shape[-1] == size:  # a 1x1 map: the converter lets the next Dense read it as it is
            return x
        return self.op("RESHAPE", [x, self.ints([1, size])], (1, size))

    def _squeeze(self, layer: dict, x: int) -> int:
        return self.op("SQUEEZE", [x], (1, self.tensors[x].shape[-1]), squeeze_dims=(1, 2))

    def _dense(self, layer: dict, x: int) -> int:
        n, units = self.tensors[x].shape[-1], layer["units"]
        y = self.op("FULLY_CONNECTED", [x, self.weights((units, n)), self.weights((units,), "int32")], (1, units),
                    fused_activation_function=FUSED_ACTIVATIONS.get(layer["activation"], "NONE"))
        return self.activation(y, layer["activation"])

    def _softmax(self, layer: dict, x: int) -> int:
        return self.op("SOFTMAX", [x], self.tensors[x].shape, beta=1.0)

    def _log_softmax(self, layer: dict, x: int) -> int:
        return self.op("LOG_SOFTMAX", [x], self.tensors[x].shape)

    # -- the graph ---------------------------------------------------------------------------------

    def graph(self) -> Graph:
        out = self.x
        if self.io == "float32":
            out = self.op("DEQUANTIZE", [out], self.tensors[out].shape, "float32")
        return Graph(tensors=list(self.tensors), ops=list(self.ops), inputs=(self.input,), outputs=(out,),
                     name="spec")


def spec_graph(arch: dict) -> Graph:
    """The graph IR of an architecture spec: the converted model's ops, shapes and constants."""
    builder = GraphBuilder(arch["input"], arch.get("io", "int8"))
    for layer in arch["layers"]:
        builder.add(layer)
    return builder.graph()


def graph_spec_cost(graph: Graph) -> SpecCost:
    """What the bounds limit, for any graph (a spec's or a converted model's)."""
    cost = graph_cost(graph)
    return SpecCost(macs=cost.macs, weight_bytes=cost.weight_bytes, peak_bytes=schedule(graph).peak_bytes)


def spec_cost(arch: dict) -> SpecCost:
    return graph_spec_cost(spec_graph(arch))
