"""Two boards side by side (`hwbench results --compare A B`): for the models measured on both,
each model's and each operator type's ratio of counts, A's over B's — how many of the M4's
instructions does the M7 need for a depthwise convolution?

Only verified measurements count (the board computed what TFLite computes), each board's under its
latest runtime build (as `hwbench fit` learns from), and only counts in one unit: a cycle is not an
instruction, so boards measured in different units are refused, saying so. A model's layers are
paired by operator index; an operator type's ratio is the sum of its counts on A over the sum on B
(the per-layer ratios' spread beside it).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from hwbench.errors import HwbenchError
from hwbench.results import ResultsDB

# The verified measurements of a board under its latest runtime, one row per model.
_LATEST = """
SELECT m.id, m.model_sha256 AS sha256, mo.name AS model, mo.macs, m.count, m.unit, m.runtime_hash
FROM measurements m JOIN models mo ON mo.sha256 = m.model_sha256
WHERE m.board = :board AND m.status = 'measured' AND m.verified = 1 AND m.runtime_hash = (
    SELECT runtime_hash FROM measurements WHERE board = :board AND status = 'measured' AND verified = 1
    ORDER BY created DESC, id DESC LIMIT 1)
"""


def compare_boards(db_path: str | Path, a: str, b: str) -> dict:
    """A's counts over B's for the models both boards measured, JSON-ready: `boards` [A, B], `unit`,
    `runtime_hash` (per board), `models`, `summary` (geometric mean, total, min and max ratio),
    `per_model` and `per_operator` rows (each with count_a, count_b and ratio)."""
    if a == b:
        raise HwbenchError(f"--compare needs two different boards, not {a} twice")
    if not Path(db_path).is_file():
        raise HwbenchError(f"{db_path}: no such results database (hwbench collect writes it)")
    store = ResultsDB(db_path)
    try:
        measured_a, measured_b = (_verified(store, db_path, board) for board in (a, b))
        unit_a, unit_b = (next(iter(m.values()))["unit"] for m in (measured_a, measured_b))
        if unit_a != unit_b:
            raise HwbenchError(f"{db_path}: {a} is measured in {unit_a} and {b} in {unit_b}; counts in different "
                               f"units cannot be compared (a cycle is not an instruction)")
        shared = sorted(measured_a.keys() & measured_b.keys(), key=lambda sha: (measured_a[sha]["model"], sha))
        if not shared:
            raise HwbenchError(f"{db_path}: no model is measured and verified on both {a} and {b}; collect the same "
                               f"models on both (hwbench collect --board BOARD --models DIR)")
        layers_a, layers_b = (_layers(store, [m[sha]["id"] for sha in shared]) for m in (measured_a, measured_b))
    finally:
        store.close()
    per_model = [{"model": measured_a[sha]["model"], "sha256": sha, "macs": measured_a[sha]["macs"],
                  **_ratio(measured_a[sha]["count"], measured_b[sha]["count"])} for sha in shared]
    ratios = np.array([m["ratio"] for m in per_model])
    return {"boards": [a, b], "unit": unit_a,
            "runtime_hash": {a: measured_a[shared[0]]["runtime_hash"], b: measured_b[shared[0]]["runtime_hash"]},
            "models": len(shared),
            "summary": {"geometric_mean_ratio": float(np.exp(np.log(ratios).mean())),
                        **_ratio(sum(m["count_a"] for m in per_model), sum(m["count_b"] for m in per_model)),
                        "min_ratio": float(ratios.min()), "max_ratio": float(ratios.max())},
            "per_model": per_model, "per_operator": _per_operator(layers_a, layers_b)}


def _ratio(count_a: float, count_b: float) -> dict:
    return {"count_a": float(count_a), "count_b": float(count_b), "ratio": float(count_a) / max(float(count_b), 1.0)}


def _verified(store: ResultsDB, db_path, board: str) -> dict[str, sqlite3.Row]:
    """sha256 -> the board's verified measurement of that model under its latest runtime."""
    cursor = store.connection.cursor()
    cursor.row_factory = sqlite3.Row
    rows = cursor.execute(_LATEST, {"board": board}).fetchall()
    if not rows:
        boards = [r[0] for r in store.connection.execute(
            "SELECT DISTINCT board FROM measurements WHERE status = 'measured' AND verified = 1 ORDER BY board")]
        where = f"boards with verified measurements: {', '.join(boards)}" if boards else "none is verified"
        raise HwbenchError(f"{db_path}: no verified measurements of board {board} ({where})")
    return {row["sha256"]: row for row in rows}


def _layers(store: ResultsDB, measurement_ids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    """(position of the measurement in `measurement_ids`, op index) -> (op type, count)."""
    position = {mid: i for i, mid in enumerate(measurement_ids)}
    rows = store.connection.execute(
        f"SELECT measurement_id, op_index, op_type, count FROM layers WHERE measurement_id IN "
        f"({','.join('?' * len(measurement_ids))})", measurement_ids)
    return {(position[mid], op_index): (op_type, count) for mid, op_index, op_type, count in rows}


def _per_operator(layers_a: dict, layers_b: dict) -> list[dict]:
    """Per operator type, over the layers both boards counted: layers, summed counts and their
    ratio, the per-layer ratios' min, median and max. Sorted by B's summed count, largest first."""
    pairs: dict[str, list[tuple[float, float]]] = {}
    for key, (op_type, count_a) in layers_a.items():
        if key in layers_b:
            pairs.setdefault(op_type, []).append((count_a, layers_b[key][1]))
    table = []
    for op_type, counts in pairs.items():
        on_a, on_b = np.array(counts).T
        per_layer = on_a / np.maximum(on_b, 1.0)
        table.append({"op": op_type, "layers": len(counts), **_ratio(on_a.sum(), on_b.sum()),
                      "min_layer_ratio": float(per_layer.min()), "median_layer_ratio": float(np.median(per_layer)),
                      "max_layer_ratio": float(per_layer.max())})
    return sorted(table, key=lambda row: -row["count_b"])
