"""The space of random models: sampling architecture descriptions and costing them before building.

An architecture is a JSON-able dict (it goes into the manifest as is):

    {"input": [H, W, C] or [N],
     "layers": [{"op": "conv", "filters": 16, "kernel": 3, "stride": 2, "padding": "same", "activation": "relu"},
                {"op": "dwconv", "kernel": 3, "stride": 1, "padding": "same", "multiplier": 1, "activation": None},
                {"op": "maxpool" | "avgpool", "size": 2, "stride": 2, "padding": "valid"},
                {"op": "residual", "body": [conv or dwconv layers keeping the shape], "activation": "relu"},
                {"op": "global_avg"}, {"op": "flatten"},
                {"op": "dense", "units": 10, "activation": None},
                {"op": "softmax"}]}

Costs follow hwbench.costs' conventions, so bounds are checked before any TensorFlow work. MACs are
exact; weight bytes are exact but for the few bytes of shape operands (RESHAPE, MEAN) the converter
adds or folds away in degenerate 1×1 cases, so the built model is checked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil, prod

import numpy as np

from hwbench.errors import HwbenchError

ACTIVATIONS = ("relu", "relu6", None)
MAX_CHANNELS = 256
BIAS_BYTES = 4  # int32
SHAPE_OPERAND_BYTES = 8  # the int32 pair a RESHAPE (new shape) or MEAN (axes) carries


@dataclass(frozen=True)
class Bounds:
    """Limits a generated model must respect, so a population fits a target board."""

    max_macs: int = 5_000_000
    max_weight_bytes: int = 128 * 1024
    max_peak_bytes: int = 96 * 1024
    min_macs: int = 0

    def __post_init__(self) -> None:
        if min(self.max_macs, self.max_weight_bytes, self.max_peak_bytes) <= 0 or self.min_macs >= self.max_macs:
            raise HwbenchError(f"model bounds are empty: {self}")

    def admit(self, macs: int, weight_bytes: int, peak_bytes: int = 0) -> bool:
        return (self.min_macs <= macs <= self.max_macs and weight_bytes <= self.max_weight_bytes
                and peak_bytes <= self.max_peak_bytes)


@dataclass(frozen=True)
class SpecCost:
    macs: int
    weight_bytes: int
    peak_bytes: int  # live activation bytes in file order, input and output counted


def conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    return ceil(size / stride) if padding == "same" else (size - kernel) // stride + 1


def layer_output_shape(layer: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    op = layer["op"]
    if op in ("conv", "dwconv", "maxpool", "avgpool"):
        h, w, c = shape
        k = layer.get("kernel", layer.get("size"))
        channels = {"conv": layer.get("filters"), "dwconv": c * layer.get("multiplier", 1)}.get(op, c)
        return (conv_out(h, k, layer["stride"], layer["padding"]),
                conv_out(w, k, layer["stride"], layer["padding"]), channels)
    if op == "global_avg":
        return (shape[-1],)
    if op == "flatten":
        return (prod(shape),)
    if op == "dense":
        return (layer["units"],)
    return shape  # residual keeps the shape; softmax too


def layer_cost(layer: dict, shape: tuple[int, ...]) -> tuple[int, int]:
    """(MACs, weight bytes) of one layer on an input of `shape` (batch dimension left out)."""
    op, out = layer["op"], layer_output_shape(layer, shape)
    if op == "conv":
        k, cin = layer["kernel"], shape[-1]
        return prod(out) * k * k * cin, k * k * cin * out[-1] + BIAS_BYTES * out[-1]
    if op == "dwconv":
        k = layer["kernel"]
        return prod(out) * k * k, k * k * out[-1] + BIAS_BYTES * out[-1]
    if op in ("maxpool", "avgpool"):
        return prod(out) * layer["size"] ** 2, 0
    if op == "dense":
        return prod(out) * shape[-1], shape[-1] * layer["units"] + BIAS_BYTES * layer["units"]
    if op == "global_avg":
        return prod(shape), SHAPE_OPERAND_BYTES
    if op == "flatten":
        return 0, SHAPE_OPERAND_BYTES
    if op == "residual":
        macs = weights = 0
        for inner in layer["body"]:
            m, w = layer_cost(inner, shape)
            macs, weights = macs + m, weights + w
        return macs + prod(shape), weights  # the ADD: one per output element
    return 0, 0


def spec_cost(arch: dict) -> SpecCost:
    shape = tuple(arch["input"])
    macs = weights = peak = 0
    for layer in arch["layers"]:
        m, w = layer_cost(layer, shape)
        out = layer_output_shape(layer, shape)
        macs, weights = macs + m, weights + w
        if layer["op"] == "residual":
            # The block input stays alive while the body runs; the ADD reads it and the body output.
            peak = max(peak, 3 * prod(shape))
        elif layer["op"] != "flatten":  # a reshape aliases its input
            peak = max(peak, prod(shape) + prod(out))
        shape = out
    return SpecCost(macs=macs, weight_bytes=weights, peak_bytes=peak)


class Sampler:
    """Draws random architectures from one numpy Generator (so a seed fixes the whole population)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def channels(self, low: int = 1, high: int = MAX_CHANNELS) -> int:
        # Log-uniform, so small and large channel counts are both well represented.
        return int(np.clip(round(2 ** self.rng.uniform(np.log2(low), np.log2(high))), low, high))

    def input_shape(self) -> list[int]:
        kind = self.rng.random()
        if kind < 0.6:  # image
            side = int(2 ** self.rng.uniform(3, np.log2(97)))  # log-uniform over 8..96
            return [side, side, self.pick([1, 3])]
        if kind < 0.9:  # audio features: time × frequency × 1, as in keyword spotting
            return self.pick([[49, 10, 1], [49, 40, 1], [32, 13, 1], [98, 10, 1], [30, 1, 40]])
        return [int(self.rng.integers(16, 1025))]  # a feature vector, as in anomaly detection

    def spatial_layer(self, shape: tuple[int, ...]) -> dict:
        h, w, c = shape
        kind = self.pick(["conv", "conv", "conv", "dwconv", "dwconv", "pool", "residual"])
        if kind == "pool":
            size = int(self.rng.integers(2, 4))
            padding = self.pick(["same", "valid"]) if min(h, w) >= size else "same"
            return {"op": self.pick(["maxpool", "avgpool"]), "size": size,
                    "stride": int(self.rng.integers(1, 3)), "padding": padding}
        if kind == "residual":
            body = [self.conv_like(shape, stride=1, padding="same", keep_channels=True)
                    for _ in range(int(self.rng.integers(1, 3)))]
            return {"op": "residual", "body": body, "activation": self.pick(ACTIVATIONS)}
        return self.conv_like(shape, op=kind)

    def conv_like(self, shape: tuple[int, ...], op: str | None = None, stride: int | None = None,
                  padding: str | None = None, keep_channels: bool = False) -> dict:
        h, w, c = shape
        op = op or self.pick(["conv", "dwconv"])
        kernel = int(self.rng.integers(1, 8))
        if padding is None:
            padding = self.pick(["same", "valid"]) if min(h, w) >= kernel else "same"
        if stride is None:
            stride = int(self.rng.integers(1, 3)) if min(h, w) >= 2 else 1
        layer = {"op": op, "kernel": kernel, "stride": stride, "padding": padding,
                 "activation": self.pick(ACTIVATIONS)}
        if op == "conv":
            layer["filters"] = c if keep_channels else self.channels()
        else:
            layer["multiplier"] = 1 if keep_channels or c * 2 > MAX_CHANNELS else int(self.rng.integers(1, 3))
        return layer

    def architecture(self) -> dict:
        input_shape = self.input_shape()
        shape = tuple(input_shape)
        layers: list[dict] = []
        if len(shape) == 3:
            for _ in range(int(self.rng.integers(1, 9))):
                layer = self.spatial_layer(shape)
                layers.append(layer)
                shape = layer_output_shape(layer, shape)
            head = {"op": self.pick(["global_avg", "flatten"])}
            layers.append(head)
            shape = layer_output_shape(head, shape)
        for _ in range(int(self.rng.integers(0, 3))):
            # Hidden layers need a nonlinearity: the converter folds a linear Dense into the next one.
            layers.append({"op": "dense", "units": self.channels(4), "activation": self.pick(["relu", "relu6"])})
        layers.append({"op": "dense", "units": int(self.rng.integers(2, 33)), "activation": None})
        if self.rng.random() < 0.5:
            layers.append({"op": "softmax"})
        return {"input": input_shape, "layers": layers}


def sample_architecture(rng: np.random.Generator, bounds: Bounds, max_tries: int = 10_000) -> tuple[dict, SpecCost]:
    """Draw architectures until one fits the bounds; deterministic for a given generator state."""
    sampler = Sampler(rng)
    for _ in range(max_tries):
        arch = sampler.architecture()
        cost = spec_cost(arch)
        if bounds.admit(cost.macs, cost.weight_bytes, cost.peak_bytes):
            return arch, cost
    raise HwbenchError(f"no random model fits {bounds} after {max_tries} tries; widen the bounds")
