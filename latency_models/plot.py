"""Predicted vs measured counts of held-out models (what `hwbench fit --plot` draws)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_predictions(measured, learned, baseline, path: str | Path, title: str = "", unit: str = "count") -> None:
    """Log-log scatter of predicted against measured, the learned model and the MACs baseline in
    two colours, with the ±10% band around the diagonal."""
    from matplotlib.figure import Figure  # the object API: no pyplot, no backend switch for the caller

    measured, learned, baseline = (np.asarray(a, dtype=np.float64) for a in (measured, learned, baseline))
    positive = np.concatenate([measured, learned[learned > 0], baseline[baseline > 0]])
    lo, hi = positive.min() / 1.5, positive.max() * 1.5
    line = np.geomspace(lo, hi, 100)
    fig = Figure(figsize=(6.4, 6.0), dpi=120)
    ax = fig.subplots()
    ax.fill_between(line, line * 0.9, line * 1.1, color="0.85", label="±10%")
    ax.plot(line, line, color="0.4", linewidth=0.8)
    within = lambda p: np.mean(np.abs(p - measured) <= 0.1 * measured) * 100  # noqa: E731
    ax.scatter(measured, np.clip(baseline, lo, None), s=9, color="tab:orange", alpha=0.6,
               label=f"MACs baseline ({within(baseline):.0f}% within ±10%)")
    ax.scatter(measured, learned, s=9, color="tab:blue", alpha=0.8,
               label=f"learned ({within(learned):.0f}% within ±10%)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(f"measured {unit} per inference")
    ax.set_ylabel(f"predicted {unit} per inference")
    ax.set_title(title or "held-out models")
    ax.legend(loc="upper left")
    ax.grid(True, which="major", linewidth=0.3)
    fig.tight_layout()
    fig.savefig(path)
