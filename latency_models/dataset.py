"""Training data from a results DB: the verified measurements of one board under one runtime, with
each model's graph (rebuilt from the .tflite bytes the DB keeps) and per-op counts.

Counts from different firmware/runtime builds are never mixed: a DB may hold several runtime hashes
(the runtime changed between collections); the latest one is used unless another is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError
from hwbench.graph import Graph
from hwbench.results import ResultsDB
from hwbench.tflite_reader import parse_tflite


@dataclass
class Dataset:
    """One row per model: graph, measured total, per-op counts (indexed by graph op index)."""

    board: str
    unit: str
    runtime_hash: str
    names: list[str]
    sha256: list[str]
    graphs: list[Graph]
    totals: np.ndarray
    layer_counts: list[np.ndarray]
    macs: np.ndarray
    ignored: dict[str, int] = field(default_factory=dict)  # why -> how many measurements were left out

    def __len__(self) -> int:
        return len(self.graphs)

    def subset(self, indices: Sequence[int]) -> "Dataset":
        pick = list(indices)
        return Dataset(self.board, self.unit, self.runtime_hash, [self.names[i] for i in pick],
                       [self.sha256[i] for i in pick], [self.graphs[i] for i in pick], self.totals[pick],
                       [self.layer_counts[i] for i in pick], self.macs[pick], dict(self.ignored))

    def split(self, test_fraction: float, seed: int) -> tuple["Dataset", "Dataset"]:
        """Random split by model: (train, test)."""
        order = np.random.default_rng(seed).permutation(len(self))
        n_test = int(round(test_fraction * len(self)))
        return self.subset(sorted(order[n_test:])), self.subset(sorted(order[:n_test]))


def load_dataset(db_path: str | Path, board: str, runtime_hash: str | None = None) -> Dataset:
    """The verified measurements of `board` in the DB at `db_path`, under `runtime_hash` (by default
    the runtime of the latest measurement). Raises HwbenchError saying what is missing."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise HwbenchError(f"{db_path}: no such results database (hwbench collect writes it)")
    store = ResultsDB(db_path)
    try:
        frame = store.measurements(board)
        if frame.empty:
            boards = sorted(store.measurements()["board"].unique())
            where = f"it has {', '.join(boards)}" if boards else "it is empty"
            raise HwbenchError(f"{db_path}: no measurements for board {board} ({where}); run hwbench collect "
                               f"--board {board} --db {db_path} first")
        usable = frame[(frame["status"] == "measured") & (frame["verified"] == True)]  # noqa: E712
        if usable.empty:
            raise HwbenchError(f"{db_path}: none of the {len(frame)} measurement(s) of board {board} is verified "
                               f"(bit-exact with the TFLite reference); nothing to learn from")
        hashes = usable.sort_values(["created", "id"])["runtime_hash"]
        if runtime_hash is None:
            runtime_hash = str(hashes.iloc[-1])
        elif runtime_hash not in set(hashes):
            raise HwbenchError(f"{db_path}: no verified measurements of board {board} with runtime {runtime_hash} "
                               f"(it has {', '.join(sorted(set(hashes)))})")
        chosen = usable[usable["runtime_hash"] == runtime_hash]
        ignored = {}
        if len(frame) > len(usable):
            ignored["not measured or not verified"] = len(frame) - len(usable)
        if len(usable) > len(chosen):
            ignored["another runtime"] = len(usable) - len(chosen)
        # Per-layer rows and model files of exactly the chosen measurements (a model may also be
        # measured under other runtimes).
        chosen_only = ("FROM measurements m WHERE m.board = ? AND m.runtime_hash = ? AND m.status = 'measured'"
                       " AND m.verified = 1")
        rows = store.connection.execute(
            f"SELECT l.measurement_id, l.op_index, l.count FROM layers l WHERE l.measurement_id IN (SELECT m.id "
            f"{chosen_only})", (board, runtime_hash)).fetchall()
        blobs = dict(store.connection.execute(
            f"SELECT sha256, tflite FROM models WHERE sha256 IN (SELECT m.model_sha256 {chosen_only})",
            (board, runtime_hash)).fetchall())
    finally:
        store.close()
    per_measurement: dict[int, list[tuple[int, float]]] = {}
    for mid, op_index, count in rows:
        per_measurement.setdefault(mid, []).append((op_index, count))
    names, shas, graphs, totals, counts, macs = [], [], [], [], [], []
    for row in chosen.itertuples(index=False):
        graph = parse_tflite(blobs[row.sha256], row.model)
        per_op = np.full(len(graph.ops), np.nan)
        for op_index, count in per_measurement.get(int(row.id), []):
            if 0 <= op_index < len(graph.ops):
                per_op[op_index] = count
        if np.isnan(per_op).any():
            ignored["layer counts incomplete"] = ignored.get("layer counts incomplete", 0) + 1
            continue
        names.append(row.model)
        shas.append(row.sha256)
        graphs.append(graph)
        totals.append(float(row.count))
        counts.append(per_op)
        macs.append(graph_cost(graph).macs)
    unit = str(chosen["unit"].iloc[0])
    return Dataset(board, unit, runtime_hash, names, shas, graphs, np.array(totals), counts,
                   np.array(macs, dtype=np.float64), ignored)
