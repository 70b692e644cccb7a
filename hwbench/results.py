"""The results database: SQLite, one transaction per model, so a killed collection loses at most the
models in flight and a rerun resumes where it stopped. Any number of processes may collect into one
database at once: a model's finished outcome (measured or skipped) is never replaced by a failed
attempt, and a failed attempt is replaced by any later outcome.

Schema (version 1, in PRAGMA user_version):

    models        sha256 PK, name, macs, weight_bytes, tflite (the model file itself, so the DB
                  alone is enough to fit latency models)
    measurements  id PK, model_sha256 -> models, board, runtime_hash (firmware + runtime + plan
                  compiler), unit ('cycles' | 'instructions'), status ('measured' | 'skipped' |
                  'failed'), reason, verified (1: the board's output equals the TFLite reference bit
                  for bit, 0: it differs, NULL: not run), repeats, input_seed, count (median per
                  inference, in `unit`), arena_bytes (as the board reported it once it ran; before, the
                  plan's), stack_bytes, plan_bytes, seconds, created;
                  UNIQUE (board, runtime_hash, model_sha256)
    runs          measurement_id, run, count (whole inference)
    layers        measurement_id, step (execution order), op_index, op_type, count (median over runs)

A board's counts always carry its unit; a board is never measured in two units.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from hwbench.errors import HwbenchError

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 30  # seconds a statement waits for other processes' locks
SCHEMA = (
    """CREATE TABLE models (
    sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, macs INTEGER NOT NULL, weight_bytes INTEGER NOT NULL,
    tflite BLOB NOT NULL)""",
    """CREATE TABLE measurements (
    id INTEGER PRIMARY KEY, model_sha256 TEXT NOT NULL REFERENCES models(sha256), board TEXT NOT NULL,
    runtime_hash TEXT NOT NULL, unit TEXT NOT NULL CHECK (unit IN ('cycles', 'instructions')),
    status TEXT NOT NULL CHECK (status IN ('measured', 'skipped', 'failed')), reason TEXT,
    verified INTEGER, repeats INTEGER, input_seed INTEGER, count REAL, arena_bytes INTEGER,
    stack_bytes INTEGER, plan_bytes INTEGER, seconds REAL, created TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (board, runtime_hash, model_sha256))""",
    """CREATE TABLE runs (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id) ON DELETE CASCADE, run INTEGER NOT NULL,
    count REAL NOT NULL, PRIMARY KEY (measurement_id, run))""",
    """CREATE TABLE layers (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id) ON DELETE CASCADE, step INTEGER NOT NULL,
    op_index INTEGER NOT NULL, op_type TEXT NOT NULL, count REAL NOT NULL, PRIMARY KEY (measurement_id, step))""",
)


@dataclass(frozen=True)
class LayerCount:
    step: int
    op_index: int
    op_type: str
    count: float


@dataclass
class Measurement:
    model: str  # file name
    sha256: str
    board: str
    runtime_hash: str
    unit: str
    status: str  # measured | skipped | failed
    macs: int
    weight_bytes: int
    tflite: bytes
    reason: str | None = None
    verified: bool | None = None
    repeats: int | None = None
    input_seed: int | None = None
    count: float | None = None
    totals: list[float] = field(default_factory=list)
    layers: list[LayerCount] = field(default_factory=list)
    arena_bytes: int | None = None
    stack_bytes: int | None = None
    plan_bytes: int | None = None
    seconds: float | None = None


class ResultsDB:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise HwbenchError(f"{self.path} is a folder, not a results database file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            self.connection.execute("PRAGMA foreign_keys = ON")
            with self.transaction():  # check and create at once: other processes may be opening it too
                self._check_or_create_schema()
            self._use_wal()
        except (sqlite3.DatabaseError, OSError) as e:
            raise HwbenchError(f"{self.path} is not a usable results database: {e}") from None

    def _use_wal(self) -> None:
        """Write-ahead logging, so readers (`hwbench results`, `fit`) never block a collection's writes.
        The switch happens once per file and, unlike other statements, SQLite does not wait for the
        other connections' locks here: it fails at once while another process is opening the new
        file, so it is retried."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self.connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _check_or_create_schema(self) -> None:
        c = self.connection
        version = c.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if version not in (0, SCHEMA_VERSION) or (version == 0 and tables):
            raise HwbenchError(f"{self.path} is not a hwbench results database (schema {version}, "
                               f"tables {sorted(tables)}); give another --db file")
        if version == 0:
            for statement in SCHEMA:
                c.execute(statement)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def transaction(self):
        return _Transaction(self.connection)

    def close(self) -> None:
        self.connection.close()

    def unit_of(self, board: str) -> str | None:
        row = self.connection.execute("SELECT unit FROM measurements WHERE board = ? LIMIT 1", (board,)).fetchone()
        return row[0] if row else None

    def finished(self, board: str, runtime_hash: str) -> set[str]:
        """Models (sha256) already measured, or skipped for good reason, with this firmware."""
        rows = self.connection.execute(
            "SELECT model_sha256 FROM measurements WHERE board = ? AND runtime_hash = ? AND status != 'failed'",
            (board, runtime_hash))
        return {r[0] for r in rows}

    def record(self, m: Measurement) -> bool:
        """Store one model's outcome atomically, unless the DB already holds a finished (measured or
        skipped) outcome for it, from this process or another; a failed attempt is replaced. Returns
        whether `m` was stored."""
        with self.transaction():  # the checks and the writes see the same DB, whoever else writes
            unit = self.unit_of(m.board)
            if unit is not None and unit != m.unit:
                raise HwbenchError(f"{self.path}: board {m.board} is measured in {unit}; refusing to add {m.unit}")
            c = self.connection
            earlier = c.execute("SELECT id, status FROM measurements WHERE board = ? AND runtime_hash = ? AND"
                                " model_sha256 = ?", (m.board, m.runtime_hash, m.sha256)).fetchone()
            if earlier is not None and earlier[1] != "failed":
                return False
            if earlier is not None:
                c.execute("DELETE FROM measurements WHERE id = ?", (earlier[0],))
            c.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?)",
                      (m.sha256, m.model, m.macs, m.weight_bytes, m.tflite))
            cursor = c.execute(
                "INSERT INTO measurements (model_sha256, board, runtime_hash, unit, status, reason, verified, repeats,"
                " input_seed, count, arena_bytes, stack_bytes, plan_bytes, seconds)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (m.sha256, m.board, m.runtime_hash, m.unit, m.status, m.reason,
                 None if m.verified is None else int(m.verified), m.repeats, m.input_seed, m.count, m.arena_bytes,
                 m.stack_bytes, m.plan_bytes, m.seconds))
            mid = cursor.lastrowid
            c.executemany("INSERT INTO runs VALUES (?, ?, ?)", [(mid, r, v) for r, v in enumerate(m.totals)])
            c.executemany("INSERT INTO layers VALUES (?, ?, ?, ?, ?)",
                          [(mid, l.step, l.op_index, l.op_type, l.count) for l in m.layers])
        return True

    def measurements(self, board: str | None = None):
        """One row per model and board: a pandas DataFrame."""
        import pandas as pd

        query = ("SELECT m.id, mo.name AS model, m.model_sha256 AS sha256, m.board, m.unit, m.count, mo.macs,"
                 " mo.weight_bytes, m.status, m.reason, m.verified, m.repeats, m.arena_bytes, m.stack_bytes,"
                 " m.plan_bytes, m.runtime_hash, m.created FROM measurements m JOIN models mo"
                 " ON mo.sha256 = m.model_sha256" + (" WHERE m.board = ?" if board else "") + " ORDER BY m.board, mo.name")
        frame = pd.read_sql_query(query, self.connection, params=(board,) if board else ())
        frame["verified"] = frame["verified"].map({1: True, 0: False})
        return frame

    def layers(self, board: str | None = None):
        import pandas as pd

        query = ("SELECT mo.name AS model, m.model_sha256 AS sha256, m.board, m.unit, l.step, l.op_index, l.op_type,"
                 " l.count FROM layers l JOIN measurements m ON m.id = l.measurement_id JOIN models mo"
                 " ON mo.sha256 = m.model_sha256" + (" WHERE m.board = ?" if board else "") + " ORDER BY m.id, l.step")
        return pd.read_sql_query(query, self.connection, params=(board,) if board else ())


class _Transaction:
    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self.connection.execute("COMMIT" if kind is None else "ROLLBACK")
        return False
