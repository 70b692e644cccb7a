"""A DS-CNN space (`--space dscnn`), as MicroNets' and MLPerf Tiny's keyword-spotting networks.

A first convolution, then depthwise-separable blocks — a depthwise 3×3 and a 1×1 convolution, each
with batch normalisation folded in and ReLU6 — then global average pooling and the dense classifier.
The first convolution chooses its kernel, width and stride; each block its width from the channel
plan (CHANNELS) and whether its depthwise convolution strides. The morphisms move a width one step
along the plan, toggle a stride, change the first kernel, and add or remove a block.
"""

from __future__ import annotations

import numpy as np

CHANNELS = (4, 8, 12, 16, 24, 32, 48, 64)
FIRST_KERNELS = (3, 5, 7)
MAX_BLOCKS = 6
STRIDE_CHANCE = 0.25  # of a block's depthwise convolution

Conv = list[int]  # [channels, stride], and the first convolution's kernel after them


class DscnnSpace:
    """DS-CNNs for inputs of `input_shape` (H, W, C) and `classes` classes."""

    name = "dscnn"

    def __init__(self, input_shape: tuple[int, ...], classes: int):
        self.input_shape, self.classes = list(input_shape), classes

    def sample(self, rng: np.random.Generator) -> dict:
        first = [int(rng.choice(CHANNELS)), int(rng.integers(1, 3)), int(rng.choice(FIRST_KERNELS))]
        return self.spec(first, [self.block(rng) for _ in range(int(rng.integers(1, MAX_BLOCKS + 1)))])

    @staticmethod
    def block(rng: np.random.Generator) -> Conv:
        return [int(rng.choice(CHANNELS)), 2 if rng.random() < STRIDE_CHANCE else 1]

    def spec(self, first: Conv, blocks: list[Conv]) -> dict:
        def conv(channels: int, kernel: int, stride: int) -> dict:
            return {"op": "conv", "filters": channels, "kernel": kernel, "stride": stride, "padding": "same",
                    "activation": "relu6", "batchnorm": True}

        channels, stride, kernel = first
        layers = [conv(channels, kernel, stride)]
        for channels, stride in blocks:
            layers += [{"op": "dwconv", "kernel": 3, "stride": stride, "padding": "same", "multiplier": 1,
                        "activation": "relu6", "batchnorm": True}, conv(channels, 1, 1)]
        layers += [{"op": "global_avg"}, {"op": "dense", "units": self.classes, "activation": None}]
        return {"input": self.input_shape, "layers": layers}

    @staticmethod
    def parts(spec: dict) -> tuple[Conv, list[Conv]]:
        """(the first convolution, the blocks) of a spec of this space."""
        first, *rest = spec["layers"][:-2]  # the head: global average, dense
        return ([first["filters"], first["stride"], first["kernel"]],
                [[pointwise["filters"], depthwise["stride"]] for depthwise, pointwise in zip(rest[::2], rest[1::2])])

    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        """A copy of `spec` with one morphism applied (one that changes it)."""
        first, blocks = self.parts(spec)
        while True:
            new_first, new_blocks = list(first), [list(block) for block in blocks]
            morphism = str(rng.choice(["channels", "stride", "kernel", "add", "remove"]))
            conv = ([new_first] + new_blocks)[int(rng.integers(len(new_blocks) + 1))]
            if morphism == "channels":
                step = CHANNELS.index(conv[0]) + int(rng.choice([-1, 1]))
                conv[0] = CHANNELS[min(max(step, 0), len(CHANNELS) - 1)]
            elif morphism == "stride":
                conv[1] = 3 - conv[1]
            elif morphism == "kernel":
                new_first[2] = int(rng.choice([k for k in FIRST_KERNELS if k != first[2]]))
            elif morphism == "add" and len(new_blocks) < MAX_BLOCKS:
                new_blocks.insert(int(rng.integers(len(new_blocks) + 1)), self.block(rng))
            elif morphism == "remove" and len(new_blocks) > 1:
                del new_blocks[int(rng.integers(len(new_blocks)))]
            mutated = self.spec(new_first, new_blocks)
            if mutated != spec:
                return mutated

    def summary(self) -> dict:
        return {"name": self.name}
