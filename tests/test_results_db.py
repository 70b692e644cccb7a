"""The results DB with several writers: the real SQLite file shared by real processes."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from hwbench.errors import HwbenchError
from hwbench.results import LayerCount, Measurement, ResultsDB

OPENERS = 4
TRIALS = 200


def _open_fresh_databases(folder: str, barrier, answers) -> None:
    """One of OPENERS processes: for each trial, wait for the others, then open that trial's new DB."""
    failures = []
    for trial in range(TRIALS):
        barrier.wait()
        try:
            ResultsDB(f"{folder}/{trial}.db").close()
        except Exception as e:  # noqa: BLE001 (every failure counts, whatever its kind)
            failures.append(f"trial {trial}: {type(e).__name__}: {e}")
    answers.put(failures)


def test_processes_opening_one_fresh_database_at_once_all_succeed(tmp_path):
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold TensorFlow's threads
    barrier, answers = context.Barrier(OPENERS), context.Queue()
    openers = [context.Process(target=_open_fresh_databases, args=(str(tmp_path), barrier, answers))
               for _ in range(OPENERS)]
    for p in openers:
        p.start()
    failures = [f for _ in openers for f in answers.get(timeout=600)]
    for p in openers:
        p.join()
    assert failures == []
    for trial in range(TRIALS):
        with sqlite3.connect(tmp_path / f"{trial}.db") as c:
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert tables == {"models", "measurements", "runs", "layers"}


def _outcome(status: str, unit: str = "instructions", count: float | None = None, sha: str = "ab" * 32) -> Measurement:
    measured = status == "measured"
    return Measurement(model="m.tflite", sha256=sha, board="b", runtime_hash="h", unit=unit, status=status, macs=10,
                       weight_bytes=4, tflite=b"model", reason=None if measured else f"{status} because",
                       verified=True if measured else None, count=count, totals=[count] if measured else [],
                       layers=[LayerCount(0, 0, "CONV_2D", count)] if measured else [])


def _rows(db: ResultsDB) -> list[tuple]:
    return db.connection.execute("SELECT status, count FROM measurements").fetchall()


def test_a_finished_outcome_is_never_replaced_by_a_failed_one(tmp_path):
    db = ResultsDB(tmp_path / "r.db")
    assert db.record(_outcome("failed"))
    assert db.record(_outcome("failed"))  # a failed attempt gives way to any later one
    assert _rows(db) == [("failed", None)]
    assert db.record(_outcome("measured", count=100.0))
    assert not db.record(_outcome("failed"))
    assert not db.record(_outcome("measured", count=101.0))  # the first finished outcome stays
    assert _rows(db) == [("measured", 100.0)]
    layers = db.connection.execute("SELECT COUNT(*) FROM layers").fetchone()[0]
    assert layers == 1  # the replaced failure left nothing behind

    other = _outcome("skipped", sha="cd" * 32)
    assert db.record(other) and not db.record(_outcome("failed", sha="cd" * 32))
    assert sorted(_rows(db)) == [("measured", 100.0), ("skipped", None)]
    assert db.finished("b", "h") == {"ab" * 32, "cd" * 32}


def test_a_second_unit_for_a_board_is_refused_and_nothing_is_written(tmp_path):
    db = ResultsDB(tmp_path / "r.db")
    db.record(_outcome("measured", count=5.0))
    with pytest.raises(HwbenchError, match="measured in instructions; refusing to add cycles"):
        db.record(_outcome("measured", unit="cycles", count=5.0, sha="ef" * 32))
    assert _rows(db) == [("measured", 5.0)]
    assert db.connection.execute("SELECT COUNT(*) FROM models").fetchone()[0] == 1
    assert not db.connection.in_transaction
