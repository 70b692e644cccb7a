"""Search spaces: ways to sample and mutate architecture specs (the format of hwbench/generate/space.py),
each with `name`, `sample(rng)`, `mutate(spec, rng)` and `summary()` (what the search's JSON says of it).

- `unas`: μNAS's CNN space (unas.py), the default;
- `mbconv`: MCUNet's MBConv space (mbconv.py), its width and resolution chosen by TinyNAS's search-space
  optimisation (tinynas.py);
- `dscnn`: a DS-CNN space (dscnn.py).

`propose` (bounded.py) draws from any of them within the hard bounds.
"""

from __future__ import annotations

from hwbench.errors import HwbenchError
from nas.objectives import Bounds, LatencyEstimator
from nas.spaces.bounded import propose
from nas.spaces.dscnn import DscnnSpace
from nas.spaces.mbconv import MbconvSpace
from nas.spaces.tinynas import SAMPLES, optimise_space
from nas.spaces.unas import CnnSpace

SPACES = ("unas", "mbconv", "dscnn")

__all__ = ["SPACES", "CnnSpace", "DscnnSpace", "MbconvSpace", "build_space", "propose"]


def build_space(name: str, input_shape: tuple[int, int, int], classes: int, bounds: Bounds,
                latency: LatencyEstimator | None = None, seed: int = 0, samples: int = SAMPLES, code_bytes: int = 0):
    """The space `name` for a dataset's images of `input_shape` (H, W, C) and `classes` classes; the MBConv
    space is optimised for `bounds` first (`samples` architectures per width and resolution, their flash
    counting the runtime's `code_bytes`)."""
    if name == "unas":
        return CnnSpace(input_shape, classes)
    if name == "dscnn":
        return DscnnSpace(input_shape, classes)
    if name == "mbconv":
        return optimise_space(input_shape, classes, bounds, latency, seed, samples, code_bytes=code_bytes)
    raise HwbenchError(f"unknown search space {name!r}: use {', '.join(SPACES)}")
