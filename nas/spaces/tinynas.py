"""TinyNAS's search-space optimisation (MCUNet): the MBConv space's width multiplier and input resolution,
chosen before the search.

For each (width, resolution) pair of a grid, `samples` architectures of the space are drawn and those
that meet the hard bounds kept (the exact peak, the weights as a lower bound of flash, MACs, and the
predicted latency when a latency model is given: nas.objectives' checks, as the search's own). The
pair whose feasible samples have the largest mean MACs wins: within the same bounds, more computation
is more capacity. Every pair's MACs distribution is kept for the report.

The grid suits small MCUs: widths 0.25 to 1 and a handful of resolutions around the dataset's own
(its images are resized to the chosen one, nas.datasets.resized).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwbench.errors import HwbenchError
from nas.objectives import Bounds, LatencyEstimator, spec_cost
from nas.spaces.bounded import Misses
from nas.spaces.mbconv import MbconvSpace

WIDTHS = (0.25, 0.5, 0.75, 1.0)
RESOLUTION_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0)  # of the dataset's image size
SAMPLES = 100  # architectures per pair


def resolution_grid(size: tuple[int, int]) -> list[tuple[int, int]]:
    """Image sizes (H, W) around `size`, its aspect ratio kept."""
    return sorted({(max(1, round(size[0] * f)), max(1, round(size[1] * f))) for f in RESOLUTION_SCALES})


@dataclass(frozen=True)
class PairStats:
    """One (width, resolution) pair's samples: the MACs of those that met the bounds."""

    width: float
    resolution: tuple[int, int]
    samples: int
    feasible_macs: tuple[int, ...]

    def mean_macs(self) -> float | None:
        return float(np.mean(self.feasible_macs)) if self.feasible_macs else None

    def as_json(self) -> dict:
        macs = np.asarray(self.feasible_macs)
        stats = {"macs_min": int(macs.min()), "macs_median": float(np.median(macs)), "macs_mean": self.mean_macs(),
                 "macs_max": int(macs.max())} if len(macs) else \
            {"macs_min": None, "macs_median": None, "macs_mean": None, "macs_max": None}
        return {"width": self.width, "resolution": list(self.resolution), "samples": self.samples,
                "feasible": len(macs), "feasible_share": len(macs) / self.samples, **stats}


def pair_rng(seed: int, width: float, resolution: tuple[int, int]) -> np.random.Generator:
    """A pair's own generator: its samples do not depend on the rest of the grid (nor meet a round's)."""
    return np.random.default_rng([seed, round(width * 1000), *resolution])


def optimise_space(input_shape: tuple[int, int, int], classes: int, bounds: Bounds,
                   latency: LatencyEstimator | None = None, seed: int = 0, samples: int = SAMPLES,
                   widths: tuple[float, ...] = WIDTHS, resolutions: list[tuple[int, int]] | None = None,
                   code_bytes: int = 0) -> MbconvSpace:
    """The MBConv space at the pair whose feasible samples have the largest mean MACs, holding every
    pair's statistics; `input_shape` is the dataset's (H, W, C)."""
    if samples < 1:
        raise HwbenchError(f"--space-samples must be at least 1, got {samples}")
    h, w, channels = input_shape
    pairs, misses = [], Misses()
    for width in widths:
        for resolution in resolutions or resolution_grid((h, w)):
            space, rng = MbconvSpace((*resolution, channels), classes, width), pair_rng(seed, width, resolution)
            macs = []
            for _ in range(samples):
                cost = spec_cost(space.sample(rng), latency, code_bytes)
                if bounds.violations(cost):
                    misses.add(cost)
                else:
                    macs.append(cost.macs)
            pairs.append(PairStats(width, resolution, samples, tuple(macs)))
    feasible = [pair for pair in pairs if pair.feasible_macs]
    if not feasible:
        raise HwbenchError(f"no MBConv architecture met the bounds ({bounds}) at any width and resolution "
                           f"({len(pairs)} pairs, {samples} samples each); {misses}: widen the bounds")
    chosen = max(feasible, key=PairStats.mean_macs)
    return MbconvSpace((*chosen.resolution, channels), classes, chosen.width, tuple(pairs))
