"""What a search minimises and the hard bounds it never crosses, known from a spec before training.

From a spec's graph IR (hwbench.generate.spec_graph, no TensorFlow): MACs, weight bytes, the exact
minimum peak of activation memory, and the latency a board's latency model predicts. Flash is what a
model takes on the board: the plan the runtime executes and the runtime's code; before conversion
the weights are a lower bound of the plan, so a spec whose weights already break the flash bound is
rejected and none that could fit is. The weights alone (μNAS's model size) have a bound of their own.

The board bounds memory by what its firmware leaves (hwbench's benchmark firmware, built once and
cached per runtime build): the SRAM less the stack and static data, the flash less the harness
around the runtime (start-up, benchmark loop, protocol, board support). In that SRAM the runtime
needs, beside the arena (scratch buffers included), the op table it decodes the plan into at load:
both are known only once the model is converted, so before training the peak stands for them (a
lower bound), after it their sum is checked as `collect` checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from hwbench.boards import Board
from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import graph_spec_cost, spec_graph
from hwbench.graph import Graph


@dataclass(frozen=True)
class Bounds:
    """Hard bounds (None: unbounded). A candidate breaking one is never trained."""

    max_peak_bytes: int | None = None
    max_flash_bytes: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    max_weight_bytes: int | None = None
    max_memory_bytes: int | None = None  # the runtime's decoded op table and arena together (the board's SRAM)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and value <= 0:
                raise HwbenchError(f"bound {f.name} must be positive, got {value}")

    def violations(self, cost: "SpecCost") -> list[str]:
        """The bounds `cost` breaks, as 'name value > bound' phrases."""
        found = [f"{name} {value:,} > {bound:,}" for name, value, bound in (
            ("peak bytes", cost.peak_bytes, self.max_peak_bytes),
            ("flash bytes", cost.flash_bytes, self.max_flash_bytes),
            ("weight bytes", cost.weight_bytes, self.max_weight_bytes),
            ("MACs", cost.macs, self.max_macs),
            ("latency ms", cost.latency_ms, self.max_latency_ms),
        ) if bound is not None and value is not None and value > bound]
        if self.max_memory_bytes is not None:
            if cost.table_bytes is None:  # not converted yet: the arena is at least the peak
                if cost.peak_bytes > self.max_memory_bytes:
                    found.append(f"memory at least the peak {cost.peak_bytes:,} B > {self.max_memory_bytes:,}")
            elif cost.table_bytes + cost.arena_bytes > self.max_memory_bytes:
                found.append(f"memory {cost.table_bytes + cost.arena_bytes:,} B (decoded op table "
                             f"{cost.table_bytes:,} B + arena {cost.arena_bytes:,} B) > {self.max_memory_bytes:,}")
        return found


def board_bounds(board: Board, max_peak_bytes: int | None = None, max_flash_bytes: int | None = None,
                 max_macs: int | None = None, max_latency_ms: float | None = None,
                 max_weight_bytes: int | None = None) -> Bounds:
    """The flags' bounds, each no looser than the board allows: peak memory, and the decoded op table
    with the arena, within the SRAM its firmware leaves, flash (plan and runtime code) within what the
    firmware's harness leaves."""
    firmware = board_firmware(board)
    peak = min(x for x in (max_peak_bytes, firmware.arena_capacity) if x is not None)
    flash = min(x for x in (max_flash_bytes, firmware.plan_room + firmware.runtime_code) if x is not None)
    return Bounds(peak, flash, max_macs, max_latency_ms, max_weight_bytes, firmware.arena_capacity)


def runtime_code_bytes(board: Board) -> int:
    """The flash the runtime's code takes on `board`, which every model's flash counts."""
    return board_firmware(board).runtime_code


def board_firmware(board: Board):
    """The board's benchmark firmware, whose footprint is what the search leaves to it."""
    from firmware_runner.firmware.build import build_firmware

    try:
        return build_firmware(board)
    except HwbenchError as e:
        raise HwbenchError(f"{board.name}: the search needs the board's firmware build, for the memory it leaves "
                           f"to models and the runtime's code size, and cannot make it: {e}") from None


class LatencyEstimator:
    """Milliseconds per inference on a board, predicted by its latency model (`hwbench fit`)."""

    def __init__(self, path: str | Path, board: Board):
        from latency_models.artifact import load_artifact

        self.artifact = load_artifact(path, board=board.name)  # refuses another board's model
        self.clock_hz = board.clock_hz

    def runtime_warning(self) -> str | None:
        from latency_models.prediction import current_runtime_hash

        return self.artifact.runtime_warning(current_runtime_hash(self.artifact.board))

    def count(self, graph: Graph) -> float:
        """Per inference, in the board's unit (cycles, or instructions on an emulator)."""
        return float(self.artifact.model.predict(graph))

    def ms(self, graph: Graph) -> float:
        # Emulated boards count instructions: read as cycles at the board's clock (one per cycle).
        return self.count(graph) / self.clock_hz * 1e3


@dataclass(frozen=True)
class SpecCost:
    macs: int
    weight_bytes: int
    peak_bytes: int
    flash_bytes: int  # the runtime's code and the plan (before conversion: the weights, a lower bound of it)
    latency_ms: float | None  # None without a latency model
    table_bytes: int | None = None  # the runtime's decoded op table and the arena: known once converted
    arena_bytes: int | None = None


def spec_cost(spec: dict, latency: LatencyEstimator | None = None, code_bytes: int = 0) -> SpecCost:
    """`code_bytes`: the runtime's code, counted in flash (runtime_code_bytes)."""
    graph = spec_graph(spec)
    cost = graph_spec_cost(graph)
    return SpecCost(cost.macs, cost.weight_bytes, cost.peak_bytes, code_bytes + cost.weight_bytes,
                    latency.ms(graph) if latency else None)
