"""The closed loop: a search's Pareto models measured on a board by `collect` (the same firmware, the
same check against TFLite's reference, the same results DB, which `hwbench fit` then learns from),
and compared with what the search assumed of them — the latency the board's latency model predicted
and the arena the planner laid out.

A prediction more than 10% off the measured count, an arena the board reports otherwise than planned,
or a model the board did not run bit-exact is a problem, named in the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from hwbench.boards import Board
from hwbench.results import ResultsDB
from nas.objectives import Bounds, LatencyEstimator
from nas.report import pareto_front, table
from nas.store import Candidate

LATENCY_TOLERANCE = 0.10
FRONT_FOLDER = "front"  # in the search's folder: the Pareto models as the files collect reads


@dataclass(frozen=True)
class BoardCheck:
    """One Pareto model on the board, beside what the search planned for it."""

    round: int
    model: str
    sha256: str
    status: str  # the results DB's: measured, skipped or failed
    reason: str | None
    verified: bool | None  # the board's output equals TFLite's reference bit for bit
    unit: str | None
    predicted_count: float | None  # None without a latency model of this board
    measured_count: float | None
    planned_arena_bytes: int
    board_arena_bytes: int | None

    @property
    def latency_error(self) -> float | None:
        """predicted / measured - 1."""
        if self.predicted_count is None or not self.measured_count:
            return None
        return self.predicted_count / self.measured_count - 1

    def problems(self) -> list[str]:
        if self.status != "measured" or not self.verified:
            return [f"round {self.round}: not verified on the board ({self.status}: {self.reason})"]
        found = []
        error = self.latency_error
        if error is not None and abs(error) > LATENCY_TOLERANCE:
            found.append(f"round {self.round}: predicted {self.predicted_count:,.0f} {self.unit}, measured "
                         f"{self.measured_count:,.0f} ({error:+.1%}: more than {LATENCY_TOLERANCE:.0%} off)")
        if self.board_arena_bytes != self.planned_arena_bytes:
            found.append(f"round {self.round}: arena planned {self.planned_arena_bytes:,} B, the board reported "
                         f"{self.board_arena_bytes:,} B")
        return found

    def as_json(self) -> dict:
        error = self.latency_error
        return {**asdict(self), "latency_error_pct": None if error is None else error * 100,
                "problems": self.problems()}


def check_front(out_dir: str | Path, candidates: dict[int, Candidate], bounds: Bounds, board: Board,
                db: str | Path, latency: LatencyEstimator | None = None, jobs: int = 1, backend=None,
                progress: Callable | None = None) -> list[BoardCheck]:
    """Measure the Pareto models of a search (stored in `out_dir`) on `board` into the results DB `db`,
    each model once (a rerun reads what the DB has); one check per model, most accurate first.
    `latency`: the search's latency model, compared when it is `board`'s; `backend`, `progress`: as
    for `collect`."""
    from firmware_runner.collect import collect
    from firmware_runner.firmware.build import build_firmware
    from hwbench.tflite_reader import parse_tflite

    rounds = [int(r) for r in pareto_front(table(candidates, bounds))["round"]]
    folder = Path(out_dir) / FRONT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for r in rounds:
        files.append(folder / f"round{r:05d}.tflite")
        files[-1].write_bytes(candidates[r].evaluation.tflite)
    results = ResultsDB(db)
    try:
        collect(board, files, results, jobs=jobs, backend=backend, progress=progress)
        rows = results.measurements(board.name)
    finally:
        results.close()
    rows = rows[rows["runtime_hash"] == build_firmware(board).runtime_hash].set_index("sha256")
    predicts = latency is not None and latency.artifact.board == board.name
    checks = []
    for r, path in zip(rounds, files):
        evaluation = candidates[r].evaluation
        sha = hashlib.sha256(evaluation.tflite).hexdigest()
        row = rows.loc[sha]
        measured = row["status"] == "measured"
        checks.append(BoardCheck(
            r, path.name, sha, row["status"], None if pd.isna(row["reason"]) else row["reason"],
            bool(row["verified"]) if measured else None, row["unit"],
            latency.count(parse_tflite(evaluation.tflite)) if predicts else None,
            float(row["count"]) if measured else None, evaluation.arena_bytes,
            None if pd.isna(row["arena_bytes"]) else int(row["arena_bytes"])))
    return checks


def summary(checks: list[BoardCheck]) -> dict:
    """How many models the board ran bit-exact, how many predictions were within the tolerance (of those
    predicted), how many arenas were as planned, and every problem."""
    ran = [c for c in checks if c.status == "measured" and c.verified]
    predicted = [c for c in ran if c.latency_error is not None]
    return {"models": len(checks), "verified": len(ran), "predicted": len(predicted),
            "within_tolerance": sum(abs(c.latency_error) <= LATENCY_TOLERANCE for c in predicted),
            "tolerance_pct": LATENCY_TOLERANCE * 100,
            "arena_as_planned": sum(c.board_arena_bytes == c.planned_arena_bytes for c in ran),
            "problems": [p for c in checks for p in c.problems()]}
