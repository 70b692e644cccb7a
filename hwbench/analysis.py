"""What `hwbench analyze` reports on a model: per-layer costs in the minimum-peak execution order,
the peaks, the arena, the fit on a board, and the memory timeline plot."""

from __future__ import annotations

from pathlib import Path

from hwbench.boards import Board
from hwbench.costs import graph_cost, shape_text
from hwbench.errors import HwbenchError
from hwbench.graph import Graph
from hwbench.kernel_paths import fast_paths_for
from hwbench.memory import DEFAULT_ALIGNMENT, memory_report


def analyze_graph(graph: Graph, model: str, alignment: int = DEFAULT_ALIGNMENT, target: Board | None = None) -> dict:
    """The analysis as one JSON-ready dict: totals, per-layer rows in execution order, board fit. The
    arena holds the scratch buffers of the kernel paths the target board takes (the host's without one)."""
    cost = graph_cost(graph)
    fast = fast_paths_for(target)
    report = memory_report(graph, alignment=alignment, fast=fast)
    offsets, scratch = report.arena.offsets, report.arena.scratch
    layers = []
    for step, v in enumerate(report.order):
        l, op = cost.layers[v], graph.ops[v]
        layers.append({
            "step": step, "index": v, "op": l.op, "inputs": l.input_shapes, "outputs": l.output_shapes,
            "input_text": ", ".join(map(shape_text, l.input_shapes)),
            "output_text": ", ".join(map(shape_text, l.output_shapes)),
            "macs": l.macs, "weights_bytes": l.weight_bytes,
            "input_bytes": sum(t.nbytes for t in graph.activation_inputs(op)),
            "output_bytes": sum(t.nbytes for t in graph.output_tensors(op)),
            "live_bytes": report.live_bytes[step],
            "scratch_bytes": scratch.get(v, (0, 0))[1],
            "output_offsets": [offsets.get(t) for t in op.outputs],
        })
    result = {
        "model": model, "ops": len(graph.ops), "macs": cost.macs, "weights_bytes": cost.weight_bytes,
        "activation_bytes": cost.activation_bytes,
        "peak_bytes": report.peak_bytes, "peak_bytes_no_inplace": report.peak_bytes_no_inplace,
        "peak_bytes_file_order": report.peak_bytes_file_order,
        "peak_bytes_file_order_no_inplace": report.peak_bytes_file_order_no_inplace,
        "arena_bytes": report.arena.size, "arena_alignment": alignment, "scratch_bytes": report.arena.scratch_bytes,
        "kernel_paths": "fast" if fast else "reference",
        "exact": report.exact, "exact_no_inplace": report.exact_no_inplace,
        "order": list(report.order), "layers": layers,
    }
    if target is not None:
        sram, flash = target.sram.size, target.flash.size
        result["board"] = {
            "name": target.name, "sram_bytes": sram, "flash_bytes": flash,
            "fits_sram": report.arena.size <= sram, "sram_margin_bytes": sram - report.arena.size,
            "fits_flash": cost.weight_bytes <= flash, "flash_margin_bytes": flash - cost.weight_bytes,
        }
        result["fits"] = result["board"]["fits_sram"] and result["board"]["fits_flash"]
    return result


def plot_memory_timeline(result: dict, path: Path) -> None:
    """Per step: input and output bytes as bars, live bytes as a line, the board's SRAM as a line."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch for the caller

    layers = result["layers"]
    steps = [l["step"] for l in layers]
    fig = Figure(figsize=(max(6.0, 0.25 * len(layers) + 2), 4.5))
    ax = fig.subplots()
    ax.bar([s - 0.2 for s in steps], [l["input_bytes"] for l in layers], width=0.4, label="input bytes")
    ax.bar([s + 0.2 for s in steps], [l["output_bytes"] for l in layers], width=0.4, label="output bytes")
    ax.plot(steps, [l["live_bytes"] for l in layers], color="black", marker=".", label="live bytes")
    ax.axhline(result["arena_bytes"], color="grey", linestyle=":", label=f"arena {result['arena_bytes']:,} B")
    if "board" in result:
        ax.axhline(result["board"]["sram_bytes"], color="red", linestyle="--",
                   label=f"{result['board']['name']} SRAM {result['board']['sram_bytes']:,} B")
    ax.set_xticks(steps, [f"{l['op']} #{l['index']}" for l in layers], rotation=90, fontsize=7)
    ax.set_ylabel("bytes")
    ax.set_title(f"{Path(result['model']).name}: memory timeline", fontsize=10)
    ax.set_xlabel("execution order")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as e:
        raise HwbenchError(f"{path}: cannot write the plot: {e.strerror or e}") from None
