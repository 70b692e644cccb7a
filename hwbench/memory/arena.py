"""Arena layout: an offset for every buffer so that buffers alive at the same step never overlap.

The buffers are the activation buffers (`buffers`) and the scratch buffers of the kernel paths that
need one (hwbench.kernel_paths: an im2col buffer, alive while its op runs), so the arena is all the
memory the runtime uses.

The arena can be no smaller than the peak of the (alignment-rounded) buffer sizes, so the planner
aims at exactly that. It places buffers one by one at the lowest offset that is free for the whole
of their lifetime (first fit), for several orderings of the buffers (by size, lifetime, area,
start, end, as TFLM's greedy planner and its variants do), then for seeded random perturbations
of the best ordering, and keeps the smallest layout; it stops as soon as a layout meets the bound.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from hwbench.errors import HwbenchError
from hwbench.graph import Graph
from hwbench.kernel_paths import scratch_sizes
from hwbench.memory.buffers import Buffer, buffers, scratch_buffers, timeline

DEFAULT_ALIGNMENT = 16  # bytes; TFLM aligns its arena buffers to 16 as well


@dataclass(frozen=True)
class Placed:
    buffer: Buffer
    offset: int
    size: int  # the buffer's size rounded up to the alignment: what it occupies in the arena


@dataclass(frozen=True)
class Arena:
    placed: tuple[Placed, ...]
    size: int  # bytes the arena needs
    alignment: int
    lower_bound: int  # the peak of the aligned buffer sizes: no layout can be smaller

    @property
    def offsets(self) -> dict[int, int]:
        """Tensor index -> byte offset in the arena (tensors sharing a buffer share the offset)."""
        return {t: p.offset for p in self.placed for t in p.buffer.tensors}

    @property
    def scratch(self) -> dict[int, tuple[int, int]]:
        """Op index -> (offset, bytes) of its scratch buffer, for the ops that have one."""
        return {p.buffer.scratch_of: (p.offset, p.buffer.size) for p in self.placed if p.buffer.scratch_of is not None}

    @property
    def scratch_bytes(self) -> int:
        """The largest scratch buffer of any op (0: none)."""
        return max((size for _, size in self.scratch.values()), default=0)


def align(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def plan_arena(graph: Graph, order: Sequence[int], alignment: int = DEFAULT_ALIGNMENT, inplace: bool = True,
               tries: int = 200, seed: int = 0, scratch: Mapping[int, int] | None = None) -> Arena:
    """Lay out the activation buffers of `graph` executed in `order` and its ops' scratch buffers
    (`scratch`: op index -> bytes; by default what each op's kernel path needs)."""
    if alignment < 1:
        raise HwbenchError(f"the arena alignment must be a positive number of bytes, got {alignment}")
    scratch = scratch_sizes(graph) if scratch is None else scratch
    return layout(buffers(graph, order, inplace) + scratch_buffers(order, scratch), len(order), alignment, tries, seed)


def layout(bufs: Sequence[Buffer], steps: int, alignment: int = DEFAULT_ALIGNMENT, tries: int = 200,
           seed: int = 0) -> Arena:
    """Offsets for `bufs` (lifetimes over `steps` steps) with the smallest arena found."""
    sizes = [align(b.size, alignment) for b in bufs]
    aligned = [replace(b, size=s) for b, s in zip(bufs, sizes)]
    bound = max(timeline(aligned, steps), default=0)
    n = len(bufs)
    keys = [
        lambda i: (-sizes[i], bufs[i].first, i),
        lambda i: (-(bufs[i].last - bufs[i].first), -sizes[i], i),
        lambda i: (-sizes[i] * (bufs[i].last - bufs[i].first + 1), i),
        lambda i: (bufs[i].first, -sizes[i], i),
        lambda i: (-bufs[i].last, -sizes[i], i),
        lambda i: (-sizes[i], -(bufs[i].last - bufs[i].first), i),
    ]
    best_size, best_offsets, best_order = None, None, None
    for key in keys:
        order = sorted(range(n), key=key)
        size, offsets = _first_fit(aligned, order)
        if best_size is None or size < best_size:
            best_size, best_offsets, best_order = size, offsets, order
        if best_size <= bound:
            break
    rng = random.Random(seed)
    budget = max(0, min(tries, 40_000 // max(1, n * n) + 1))
    for _ in range(budget if best_size > bound and n > 1 else 0):
        order = list(best_order)
        for _ in range(rng.randint(1, 3)):  # move a few buffers earlier in the placement order
            i = rng.randrange(1, n)
            j = rng.randrange(0, i)
            order.insert(j, order.pop(i))
        size, offsets = _first_fit(aligned, order)
        if size <= best_size:
            best_size, best_offsets, best_order = size, offsets, order
        if best_size <= bound:
            break
    placed = tuple(Placed(b, best_offsets[i], sizes[i]) for i, b in enumerate(bufs))
    return Arena(placed=placed, size=best_size or 0, alignment=alignment, lower_bound=bound)


def _first_fit(bufs: Sequence[Buffer], order: Sequence[int]) -> tuple[int, list[int]]:
    offsets = [0] * len(bufs)
    placed: list[int] = []
    top = 0
    for i in order:
        b = bufs[i]
        busy = sorted((offsets[j], offsets[j] + bufs[j].size) for j in placed if bufs[j].overlaps_in_time(b))
        offset = 0
        for start, end in busy:
            if start - offset >= b.size:
                break
            offset = max(offset, end)
        offsets[i] = offset
        placed.append(i)
        top = max(top, offset + b.size)
    return top, offsets


def overlaps(arena: Arena) -> list[tuple[Placed, Placed]]:
    """Pairs of buffers alive at a common step whose byte ranges intersect (empty for a valid
    layout); also reports buffers reaching past the arena's end or misaligned, paired with themselves."""
    bad = [(p, p) for p in arena.placed
           if p.offset < 0 or p.offset + p.size > arena.size or p.offset % arena.alignment or p.size < p.buffer.size]
    items = list(arena.placed)
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if a.buffer.overlaps_in_time(b.buffer) and a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                bad.append((a, b))
    return bad
