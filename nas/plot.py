"""A search at a glance: int8 validation accuracy against predicted latency (MACs without a latency
model), colour for peak memory up to its bound, the Pareto front ringed and the bounds drawn."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas.objectives import Bounds


def plot_search(frame: pd.DataFrame, front: pd.DataFrame, bounds: Bounds, path: str | Path, title: str = "") -> None:
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch for the caller

    trained = frame[frame["status"] == "ok"]
    x, label, bound = ("latency_ms", "predicted latency (ms)", bounds.max_latency_ms) \
        if trained["latency_ms"].notna().all() and len(trained) else ("macs", "MACs", bounds.max_macs)
    fig = Figure(figsize=(7.0, 5.0), dpi=120)
    ax = fig.subplots()
    points = ax.scatter(trained[x], trained["val_accuracy"], c=trained["peak_bytes"], cmap="viridis", s=18,
                        vmin=0, vmax=bounds.max_peak_bytes)
    fig.colorbar(points, ax=ax, label="peak memory (bytes)" + (f", bound {bounds.max_peak_bytes:,}"
                                                                 if bounds.max_peak_bytes else ""))
    ax.scatter(front[x], front["val_accuracy"], s=70, facecolors="none", edgecolors="tab:red", label="Pareto front")
    if bound is not None:
        ax.axvline(bound, color="tab:red", linestyle="--", linewidth=1, label=f"bound {bound:,}")
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("int8 validation accuracy")
    ax.set_title(title or f"{len(trained)} trained candidates")
    ax.legend(loc="lower right")
    ax.grid(True, linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path)
