"""μNAS's CNN space (`--space unas`).

`CnnSpace` is μNAS's CNN space: a chain of blocks — convolution, depthwise convolution, 1×1
convolution, pooling, and a branch joined to its input by ADD (a residual convolution keeping the
channels) — then a dense head (flatten or global average, at most one hidden dense layer,
the class logits). Its morphisms change a kernel, a channel count or a stride, add or remove a block,
and change the head. Every convolution pads SAME, so no mutation can shrink a map to nothing.
"""

from __future__ import annotations

import copy

import numpy as np

from hwbench.generate.spec_graph import GraphBuilder

KERNELS = (1, 3, 5, 7)
MAX_BLOCKS = 8


class CnnSpace:
    """μNAS's CNN space for images of `input_shape` (H, W, C) and `classes` classes."""

    name = "unas"

    def __init__(self, input_shape: tuple[int, ...], classes: int, max_channels: int = 64, max_units: int = 64):
        self.input_shape, self.classes = list(input_shape), classes
        self.max_channels, self.max_units = max_channels, max_units

    # -- sampling ---------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> dict:
        body = [self.block(rng) for _ in range(int(rng.integers(1, 5)))]
        hidden = [self.hidden(rng)] if rng.random() < 0.3 else []
        return self.spec(body, "flatten" if rng.random() < 0.5 else "global_avg", hidden)

    def spec(self, body: list[dict], pooling: str, hidden: list[dict]) -> dict:
        head = [{"op": pooling}, *hidden, {"op": "dense", "units": self.classes, "activation": None}]
        return _fit_branches({"input": self.input_shape, "layers": body + head})

    def block(self, rng: np.random.Generator) -> dict:
        kind = rng.choice(["conv", "dwconv", "pointwise", "pool", "branch"], p=[0.4, 0.2, 0.15, 0.15, 0.1])
        if kind == "branch":  # its width is the input's, set by _fit_branches
            conv = {"op": "conv", "filters": 0, "kernel": int(rng.choice(KERNELS[1:])), "stride": 1,
                    "padding": "same", "activation": "relu"}
            return {"op": "residual", "body": [conv], "preact": None, "activation": "relu"}
        if kind == "pool":
            return {"op": str(rng.choice(["maxpool", "avgpool"])), "size": 2, "stride": 2, "padding": "same"}
        stride = 2 if rng.random() < 0.3 else 1
        if kind == "dwconv":
            return {"op": "dwconv", "kernel": int(rng.choice(KERNELS[1:])), "stride": stride, "padding": "same",
                    "multiplier": 1, "activation": "relu"}
        kernel = 1 if kind == "pointwise" else int(rng.choice(KERNELS[1:]))
        return {"op": "conv", "filters": self.channels(rng), "kernel": kernel, "stride": stride, "padding": "same",
                "activation": "relu"}

    def channels(self, rng: np.random.Generator, around: int | None = None) -> int:
        """Log-uniform over 2..max_channels, or within a factor of two of `around`."""
        low, high = (np.log2(2), np.log2(self.max_channels)) if around is None else \
            (np.log2(max(around / 2, 2)), np.log2(min(around * 2, self.max_channels)))
        return int(round(2 ** rng.uniform(low, high)))

    def hidden(self, rng: np.random.Generator) -> dict:
        return {"op": "dense", "units": int(round(2 ** rng.uniform(3, np.log2(self.max_units)))), "activation": "relu"}

    # -- morphisms --------------------------------------------------------------------------------

    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        """A copy of `spec` with one morphism applied (one that changes it)."""
        body, pooling, hidden = self.parts(spec)
        morphisms = ["kernel", "channels", "stride", "add", "remove", "head"]
        while True:
            new_body, new_pooling, new_hidden = copy.deepcopy(body), pooling, copy.deepcopy(hidden)
            morphism = str(rng.choice(morphisms))
            convs = [layer for layer in new_body if layer["op"] in ("conv", "dwconv")]
            if morphism == "kernel" and convs:
                layer = convs[int(rng.integers(len(convs)))]
                choices = [k for k in KERNELS if k != layer["kernel"] and (k > 1 or layer["op"] == "conv")]
                layer["kernel"] = int(rng.choice(choices))
            elif morphism == "channels" and any(layer["op"] == "conv" for layer in convs):
                layer = [c for c in convs if c["op"] == "conv"][int(rng.integers(sum(c["op"] == "conv" for c in convs)))]
                layer["filters"] = self.channels(rng, around=layer["filters"])
            elif morphism == "stride" and convs:
                layer = convs[int(rng.integers(len(convs)))]
                layer["stride"] = 3 - layer["stride"]
            elif morphism == "add" and len(new_body) < MAX_BLOCKS:
                new_body.insert(int(rng.integers(len(new_body) + 1)), self.block(rng))
            elif morphism == "remove" and len(new_body) > 1:
                del new_body[int(rng.integers(len(new_body)))]
            elif morphism == "head":
                change = rng.integers(3)
                if change == 0:
                    new_pooling = "global_avg" if pooling == "flatten" else "flatten"
                elif change == 1:
                    new_hidden = [] if hidden else [self.hidden(rng)]
                elif hidden:
                    new_hidden = [self.hidden(rng)]
            mutated = self.spec(new_body, new_pooling, new_hidden)
            if mutated != spec:
                return mutated

    def summary(self) -> dict:
        return {"name": self.name}

    def parts(self, spec: dict) -> tuple[list[dict], str, list[dict]]:
        """(blocks, the pooling that starts the head, hidden dense layers) of a spec of this space."""
        layers = spec["layers"]
        start = next(i for i, layer in enumerate(layers) if layer["op"] in ("flatten", "global_avg"))
        return layers[:start], layers[start]["op"], layers[start + 1:-1]


def _fit_branches(spec: dict) -> dict:
    """`spec` with each branch's convolution as wide as the branch's input (which a mutation upstream
    may have changed), so that the ADD joins equal shapes."""
    builder = GraphBuilder(spec["input"])
    for layer in spec["layers"]:
        if layer["op"] == "residual":
            layer["body"][-1]["filters"] = int(builder.shape()[-1])
        builder.add(layer)
    return spec
