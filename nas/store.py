"""The search store: SQLite in the search's output folder, one transaction per evaluated candidate
(its spec, metrics and .tflite), so a killed search resumes losing only the candidates in training.

Schema (version 3, in PRAGMA user_version; a version 2 store gains the retrained table):

    settings    one row: the search's settings as JSON (a resumed search must use the same ones)
    candidates  round PK, parent (round or NULL), spec (JSON), status ('ok' | 'diverged' | 'failed'),
                reason, val_accuracy, test_accuracy, macs, peak_bytes, arena_bytes, table_bytes,
                weight_bytes, flash_bytes, latency_ms, train_seconds, tflite, created
    retrained   (round, epochs) PK: a candidate's spec trained anew for more epochs (`hwbench search
                --final-epochs`), then its evaluation as a candidate's: status ... tflite, created
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from hwbench.errors import HwbenchError
from nas.evaluate import Evaluation

SCHEMA_VERSION = 3  # 2: table_bytes and weight_bytes; 3: retrained
STORE_FILE = "search.db"
METRICS = ("val_accuracy", "test_accuracy", "macs", "peak_bytes", "arena_bytes", "table_bytes", "weight_bytes",
           "flash_bytes", "latency_ms", "train_seconds")
_EVALUATION = (f"status TEXT NOT NULL CHECK (status IN ('ok', 'diverged', 'failed')), reason TEXT, "
               f"{', '.join(f'{m} REAL' for m in METRICS)}, tflite BLOB, "
               f"created TEXT NOT NULL DEFAULT (datetime('now'))")
RETRAINED = f"CREATE TABLE retrained (round INTEGER, epochs INTEGER, {_EVALUATION}, PRIMARY KEY (round, epochs))"
SCHEMA = (
    "CREATE TABLE settings (id INTEGER PRIMARY KEY CHECK (id = 0), json TEXT NOT NULL)",
    f"CREATE TABLE candidates (round INTEGER PRIMARY KEY, parent INTEGER, spec TEXT NOT NULL, {_EVALUATION})",
    RETRAINED,
)
_COLUMNS = f"status, reason, {', '.join(METRICS)}, tflite"  # an evaluation's, in Evaluation's order


@dataclass(frozen=True)
class Candidate:
    round: int
    parent: int | None
    spec: dict
    evaluation: Evaluation


class SearchStore:
    """The store of one search in `folder`. A new search refuses a folder that already holds one; a
    resumed one refuses a store of other settings."""

    def __init__(self, folder: str | Path, settings: dict, resume: bool = False):
        self.path = Path(folder) / STORE_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HwbenchError(f"{self.path.parent}: cannot create the output folder: {e.strerror}") from None
        existed = self.path.exists()
        if existed and not resume:
            raise HwbenchError(f"{self.path.parent} already holds a search: continue it with --resume, or choose "
                               f"another --out")
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            self._open(settings, existed)
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise HwbenchError(f"{self.path}: damaged search store ({e}); move it away to start afresh") from None

    def _open(self, settings: dict, existed: bool) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if existed and self.db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise sqlite3.DatabaseError("tables but no schema version")
            self.db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                self.db.execute(statement)
            self.db.execute("INSERT INTO settings VALUES (0, ?)", (json.dumps(settings, sort_keys=True),))
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
            return
        if version == 2:  # the same but for the retrained table
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(RETRAINED)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        elif version != SCHEMA_VERSION:
            raise HwbenchError(f"{self.path}: search store schema {version}, this hwbench reads {SCHEMA_VERSION}: "
                               f"start the search afresh in another --out")
        stored = json.loads(self.db.execute("SELECT json FROM settings").fetchone()[0])
        if stored != json.loads(json.dumps(settings, sort_keys=True)):
            changed = sorted(k for k in stored.keys() | settings.keys() if stored.get(k) != settings.get(k))
            raise HwbenchError(f"{self.path.parent} holds a search with other settings ({', '.join(changed)} "
                               f"differ): resume it with the same ones, or choose another --out")

    def add(self, candidate: Candidate) -> None:
        """Store one evaluated candidate, in one transaction."""
        self._insert("candidates", f"round, parent, spec, {_COLUMNS}",
                     (candidate.round, candidate.parent, json.dumps(candidate.spec), *_row(candidate.evaluation)))

    def add_retrained(self, round: int, epochs: int, evaluation: Evaluation) -> None:
        """Store the evaluation of round `round`'s spec trained anew for `epochs`."""
        self._insert("retrained", f"round, epochs, {_COLUMNS}", (round, epochs, *_row(evaluation)))

    def retrained(self, round: int, epochs: int) -> Evaluation | None:
        """What add_retrained stored for round `round` and `epochs`, if anything."""
        row = self._query(f"SELECT {_COLUMNS} FROM retrained WHERE round = ? AND epochs = ?", (round, epochs))
        return _evaluation(row[0]) if row else None

    def candidates(self) -> dict[int, Candidate]:
        """Every stored candidate, by round."""
        rows = self._query(f"SELECT round, parent, spec, {_COLUMNS} FROM candidates ORDER BY round")
        return {row[0]: Candidate(row[0], row[1], json.loads(row[2]), _evaluation(row[3:])) for row in rows}

    def _insert(self, table: str, columns: str, values: tuple) -> None:
        self.db.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(values))})", values)

    def _query(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as e:
            raise HwbenchError(f"{self.path}: damaged search store ({e}); move it away to start afresh") from None

    def close(self) -> None:
        self.db.close()


def _row(e: Evaluation) -> tuple:
    """An evaluation as the store's columns (_COLUMNS)."""
    return (e.status, e.reason, *(getattr(e, m) for m in METRICS), e.tflite)


def _evaluation(row: tuple) -> Evaluation:
    """The evaluation the store's columns (_COLUMNS) hold."""
    values = dict(zip(METRICS, row[2:-1]))
    for whole in ("macs", "peak_bytes", "arena_bytes", "table_bytes", "weight_bytes", "flash_bytes"):
        values[whole] = None if values[whole] is None else int(values[whole])
    return Evaluation(row[0], row[1], **values, tflite=row[-1])
