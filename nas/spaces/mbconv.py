"""The MCUNet MBConv space (`--space mbconv`), scaled down to small MCUs.

A stem (3×3 convolution, stride 2), MobileNetV2's first block (an inverted residual of expansion 1),
then three stages of inverted residual blocks ("mbconv" layers of the spec format: 1×1 expansion,
depthwise k×k, linear 1×1 projection, ADD when the shape is kept; ReLU6, batch normalisation folded
in), each stage one to three blocks deep, its first block widening and striding; every block chooses
its kernel (3, 5, 7) and expansion (3, 4, 6). Then global average pooling and the dense classifier.

A width multiplier scales every channel count (to a multiple of 4, the runtime's channel group) and
the input resolution is the spec's input: both are fixed for a search, chosen by TinyNAS's search-space
optimisation (tinynas.py). The morphisms change a block's kernel or expansion, or make a stage one block
deeper or shallower.
"""

from __future__ import annotations

import numpy as np

STEM_CHANNELS, FIRST_CHANNELS = 16, 8  # at width 1
STAGES = ((16, 2), (24, 2), (40, 1))  # (channels at width 1, stride of the stage's first block)
DEPTHS = (1, 2, 3)
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
CHANNEL_GROUP = 4

Block = tuple[int, int]  # (kernel, expansion)


def scaled(channels: int, width: float) -> int:
    """`channels` times the width multiplier, to the nearest multiple of the channel group (at least one)."""
    return max(CHANNEL_GROUP, int(channels * width / CHANNEL_GROUP + 0.5) * CHANNEL_GROUP)


class MbconvSpace:
    """MBConv networks for images of `input_shape` (H, W, C: the chosen resolution) and `classes` classes
    at width multiplier `width`; `pairs` are the search-space optimisation's statistics that chose them
    (tinynas.PairStats), if any."""

    name = "mbconv"

    def __init__(self, input_shape: tuple[int, ...], classes: int, width: float = 1.0, pairs: tuple = ()):
        self.input_shape, self.classes, self.width, self.pairs = list(input_shape), classes, width, pairs
        self.stage_channels = [scaled(channels, width) for channels, _ in STAGES]
        # Stages are told apart by their width (see stages()).
        assert len(set(self.stage_channels)) == len(STAGES), self.stage_channels

    def sample(self, rng: np.random.Generator) -> dict:
        return self.spec([[self.block(rng) for _ in range(int(rng.choice(DEPTHS)))] for _ in STAGES])

    @staticmethod
    def block(rng: np.random.Generator) -> Block:
        return int(rng.choice(KERNELS)), int(rng.choice(EXPANSIONS))

    def spec(self, stages: list[list[Block]]) -> dict:
        def mbconv(expansion: int, kernel: int, stride: int, filters: int) -> dict:
            return {"op": "mbconv", "expansion": expansion, "kernel": kernel, "stride": stride, "filters": filters,
                    "activation": "relu6", "batchnorm": True}

        layers = [{"op": "conv", "filters": scaled(STEM_CHANNELS, self.width), "kernel": 3, "stride": 2,
                   "padding": "same", "activation": "relu6", "batchnorm": True},
                  mbconv(1, 3, 1, scaled(FIRST_CHANNELS, self.width))]
        for (_, stride), channels, blocks in zip(STAGES, self.stage_channels, stages):
            layers += [mbconv(expansion, kernel, stride if j == 0 else 1, channels)
                       for j, (kernel, expansion) in enumerate(blocks)]
        layers += [{"op": "global_avg"}, {"op": "dense", "units": self.classes, "activation": None}]
        return {"input": self.input_shape, "layers": layers}

    def stages(self, spec: dict) -> list[list[Block]]:
        """The (kernel, expansion) of each stage's blocks in a spec of this space."""
        blocks = [layer for layer in spec["layers"][2:] if layer["op"] == "mbconv"]
        return [[(b["kernel"], b["expansion"]) for b in blocks if b["filters"] == channels]
                for channels in self.stage_channels]

    def mutate(self, spec: dict, rng: np.random.Generator) -> dict:
        """A copy of `spec` with one morphism applied (one that changes it)."""
        stages = self.stages(spec)
        while True:
            new = [list(blocks) for blocks in stages]
            blocks = new[int(rng.integers(len(new)))]
            morphism = str(rng.choice(["kernel", "expansion", "depth"]))
            at = int(rng.integers(len(blocks)))
            kernel, expansion = blocks[at]
            if morphism == "kernel":
                blocks[at] = (int(rng.choice([k for k in KERNELS if k != kernel])), expansion)
            elif morphism == "expansion":
                blocks[at] = (kernel, int(rng.choice([e for e in EXPANSIONS if e != expansion])))
            elif len(blocks) < max(DEPTHS) and (len(blocks) == min(DEPTHS) or rng.random() < 0.5):
                blocks.insert(int(rng.integers(len(blocks) + 1)), self.block(rng))
            else:
                del blocks[at]
            mutated = self.spec(new)
            if mutated != spec:
                return mutated

    def summary(self) -> dict:
        """The space as the search's JSON reports it: the width, the resolution and, when it was
        optimised, every (width, resolution) pair's MACs distribution."""
        return {"name": self.name, "width": self.width, "resolution": self.input_shape[:2],
                **({"pairs": [pair.as_json() for pair in self.pairs]} if self.pairs else {})}
