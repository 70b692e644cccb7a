"""Drawing specs from a space within the hard bounds: a spec that breaks one is never trained."""

from __future__ import annotations

import numpy as np

from hwbench.errors import HwbenchError
from nas.objectives import Bounds, LatencyEstimator, SpecCost, spec_cost

MAX_TRIES = 500  # draws per proposal before saying the bounds are out of reach


class Misses:
    """The smallest peak, weights and latency among specs that broke the bounds: what a user needs to
    hear to widen them."""

    def __init__(self):
        self.smallest: dict[str, float] = {}

    def add(self, cost: SpecCost) -> None:
        for name in ("peak_bytes", "weight_bytes", "flash_bytes", "latency_ms"):
            value = getattr(cost, name)
            if value is not None:
                self.smallest[name] = min(self.smallest.get(name, value), value)

    def __str__(self) -> str:
        latency = f", the lowest latency {self.smallest['latency_ms']:.3f} ms" if "latency_ms" in self.smallest else ""
        return (f"the smallest peak seen was {self.smallest['peak_bytes']:,} B, the smallest weights "
                f"{self.smallest['weight_bytes']:,} B, the smallest flash {self.smallest['flash_bytes']:,} B{latency}")


def propose(space, rng: np.random.Generator, bounds: Bounds, latency: LatencyEstimator | None = None,
            parent: dict | None = None, max_tries: int = MAX_TRIES, code_bytes: int = 0) -> tuple[dict, SpecCost]:
    """A spec sampled from `space` (or a mutation of `parent`) that meets `bounds`, and its costs
    (flash counting the runtime's `code_bytes`).

    After `max_tries` misses, raises HwbenchError with the smallest peak and flash seen."""
    misses = Misses()
    for _ in range(max_tries):
        spec = space.mutate(parent, rng) if parent is not None else space.sample(rng)
        cost = spec_cost(spec, latency, code_bytes)
        if not bounds.violations(cost):
            return spec, cost
        misses.add(cost)
    what = "mutation of the parent" if parent is not None else "sampled architecture"
    raise HwbenchError(f"no {what} met the bounds ({bounds}) in {max_tries} tries; {misses}: widen the bounds")
