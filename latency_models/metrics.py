"""Accuracy of latency predictions, per model and per operator kind."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from hwbench.graph import Graph


def accuracy(measured, predicted) -> dict:
    """Model-level accuracy: MAPE and RMSPE (percent), R² (of counts), and the share of models
    predicted within ±5% and ±10% (fractions), with the worst error (percent)."""
    measured, predicted = np.asarray(measured, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    if measured.size == 0:
        return {"n": 0}
    relative = (predicted - measured) / measured
    spread = np.sum((measured - measured.mean()) ** 2)
    return {
        "n": int(measured.size),
        "mape": float(np.mean(np.abs(relative)) * 100),
        "rmspe": float(np.sqrt(np.mean(relative**2)) * 100),
        "r2": float(1 - np.sum((measured - predicted) ** 2) / spread) if spread > 0 else float("nan"),
        "within_5": float(np.mean(np.abs(relative) <= 0.05)),
        "within_10": float(np.mean(np.abs(relative) <= 0.10)),
        "max_error": float(np.max(np.abs(relative)) * 100),
    }


def per_operator(model, graphs: Sequence[Graph], layer_counts: Sequence[np.ndarray], totals) -> list[dict]:
    """Per operator kind on these models: layers, the kind's share of the measured count, the
    per-layer MAPE, the signed bias of its summed counts, and the mean share of a model's count the
    kind mispredicts (Σ|error| of its layers / model total). Sorted by share of the count."""
    rows: dict[str, dict] = {}
    grand_total = float(np.sum(totals))
    for graph, counts, total in zip(graphs, layer_counts, totals):
        predicted = model.predict_layers(graph)
        for i, op in enumerate(graph.ops):
            kind = model.op_kind(graph, op)
            row = rows.setdefault(kind, {"kind": kind, "layers": 0, "measured": 0.0, "predicted": 0.0,
                                         "abs_relative": 0.0, "model_share_error": 0.0})
            row["layers"] += 1
            row["measured"] += counts[i]
            row["predicted"] += predicted[i]
            row["abs_relative"] += abs(predicted[i] - counts[i]) / max(counts[i], 1.0)
            row["model_share_error"] += abs(predicted[i] - counts[i]) / total
    regressors = getattr(model, "kind_reports_", {})
    table = []
    for kind, row in rows.items():
        report = regressors.get(kind)
        table.append({
            "kind": kind,
            "regressor": report.chosen if report else "GENERIC fallback",
            "layers": row["layers"],
            "count_share": row["measured"] / grand_total * 100 if grand_total else 0.0,
            "layer_mape": row["abs_relative"] / row["layers"] * 100,
            "bias": (row["predicted"] - row["measured"]) / row["measured"] * 100 if row["measured"] else 0.0,
            "model_error_share": row["model_share_error"] / len(graphs) * 100,
        })
    return sorted(table, key=lambda r: -r["count_share"])
