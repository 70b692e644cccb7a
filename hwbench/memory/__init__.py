"""Peak activation memory: the execution order that minimises it, and the arena layout.

    read_tflite → schedule (order) → plan_arena (offsets) → the plan compiler and runtime

- `schedule(graph)` → `Schedule(order, peak_bytes, exact, ...)`: the exact minimum-peak order.
- `plan_arena(graph, order, alignment)` → `Arena(placed, size, ...)`: offsets per buffer.
- `reuse_rule(graph, op)`: the in-place rule the planner and the runtime share.
- `memory_report(graph)`: all of it at once, with the file order's peak and the peak without
  in-place reuse for comparison (what `hwbench analyze` shows).
"""

from __future__ import annotations

from dataclasses import dataclass

from hwbench.graph import Graph
from hwbench.kernel_paths import scratch_sizes
from hwbench.memory.arena import DEFAULT_ALIGNMENT, Arena, Placed, layout, overlaps, plan_arena
from hwbench.memory.buffers import Buffer, Reuse, buffers, check_graph, order_peak, reuse_rule, timeline
from hwbench.memory.schedule import DEFAULT_MAX_STATES, Schedule, schedule

__all__ = [
    "Arena", "Buffer", "DEFAULT_ALIGNMENT", "DEFAULT_MAX_STATES", "MemoryReport", "Placed", "Reuse", "Schedule",
    "buffers", "check_graph", "layout", "memory_report", "order_peak", "overlaps", "plan_arena", "reuse_rule",
    "schedule", "timeline",
]


@dataclass(frozen=True)
class MemoryReport:
    schedule: Schedule  # the order the runtime executes: optimal with in-place reuse
    peak_bytes: int  # that order's peak, in-place reuse applied
    peak_bytes_no_inplace: int  # the optimal peak if no buffer were shared
    exact_no_inplace: bool
    peak_bytes_file_order: int  # the file's op order, in-place reuse applied
    peak_bytes_file_order_no_inplace: int
    arena: Arena  # the layout under `schedule.order`
    live_bytes: tuple[int, ...]  # live activation bytes at each step of `schedule.order`

    @property
    def order(self) -> tuple[int, ...]:
        return self.schedule.order

    @property
    def exact(self) -> bool:
        return self.schedule.exact


def memory_report(graph: Graph, alignment: int = DEFAULT_ALIGNMENT, max_states: int = DEFAULT_MAX_STATES,
                  fast: bool = True) -> MemoryReport:
    """`fast`: the kernel paths whose scratch buffers the arena holds (hwbench.kernel_paths)."""
    best = schedule(graph, inplace=True, max_states=max_states)
    plain = schedule(graph, inplace=False, max_states=max_states)
    file_order = check_graph(graph)  # the file order when it is valid, else the nearest topological order
    return MemoryReport(
        schedule=best,
        peak_bytes=best.peak_bytes,
        peak_bytes_no_inplace=plain.peak_bytes,
        exact_no_inplace=plain.exact,
        peak_bytes_file_order=order_peak(graph, file_order, inplace=True),
        peak_bytes_file_order_no_inplace=order_peak(graph, file_order, inplace=False),
        arena=plan_arena(graph, best.order, alignment=alignment, inplace=True, scratch=scratch_sizes(graph, fast)),
        live_bytes=tuple(timeline(buffers(graph, best.order, inplace=True), len(best.order))),
    )
