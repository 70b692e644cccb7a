"""`hwbench collect` when things go wrong around it: several processes sharing one DB while emulators
die under them, Ctrl-C and SIGTERM in the middle of a collection, a bug in one model's measurement,
a board it cannot run on. Real QEMU, real processes, the real results DB."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import emulators_under, measurement_count, run_cli
from hwbench.boards import get_board
from hwbench.cli import INTERNAL_ERROR
from hwbench.results import ResultsDB
from firmware_runner import collect as collect_module
from firmware_runner.collect import collect

HWBENCH = [sys.executable, "-m", "hwbench.cli"]


def _hwbench(*args: str, runs: Path, **popen) -> subprocess.Popen:
    """`hwbench ARGS` in a new process whose emulators put their run files under `runs`, with the
    signals' default actions (a test run under nohup, or in the background of a shell without job
    control, would have it inherit SIGHUP or SIGINT ignored)."""
    return subprocess.Popen([*HWBENCH, *args], env={**os.environ, "TMPDIR": str(runs)}, text=True,
                            preexec_fn=_default_signals, **popen)


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


class _FailingFirstAttempts(threading.Thread):
    """The first attempt at each (board, model) fails: its emulator is killed, as the OOM killer or a
    stray `kill` would, with no hook in hwbench. Half of them are killed at once, so their failure
    comes first and a later success must replace it. The other half are frozen (SIGSTOP) until
    another process has recorded that model verified on that board, then killed, so that their
    failure comes after the success, which must stay; after 5 s frozen one is killed anyway, so two
    processes each waiting for the other's model cannot stall."""

    def __init__(self, runs: Path, db: Path):
        super().__init__(daemon=True)
        self.runs, self.db, self.done = runs, db, threading.Event()
        self.pids: set[int] = set()
        self.attempted: set[tuple[str, int]] = set()
        self.frozen: dict[int, tuple[tuple[str, int], float]] = {}
        self.killed = {"at once": 0, "after a success": 0, "after 5 s": 0}

    def run(self) -> None:
        while not self.done.is_set():
            for pid, args in emulators_under(self.runs).items():
                if pid not in self.pids:
                    self.pids.add(pid)
                    self._first_attempt(pid, args)
            for pid, (key, since) in list(self.frozen.items()):
                if self._verified(key) or time.monotonic() - since > 5:
                    self._kill(pid, "after a success" if self._verified(key) else "after 5 s")
                    del self.frozen[pid]
            time.sleep(0.002)

    def _first_attempt(self, pid: int, args: list[str]) -> None:
        image = next(a for a in args if a.startswith("loader,file=")).split(",")[1].removeprefix("file=")
        try:
            seed = struct.unpack_from("<4I", Path(image).read_bytes())[1]  # the run header (bench.c): the model's seed
        except OSError:  # that run has ended already
            return
        key = (args[args.index("-M") + 1], seed)  # the machine is the board's name here
        if key in self.attempted:
            return
        self.attempted.add(key)
        if len(self.attempted) % 2:
            self._kill(pid, "at once")
        else:
            try:
                os.kill(pid, signal.SIGSTOP)
                self.frozen[pid] = (key, time.monotonic())
            except ProcessLookupError:
                pass

    def _kill(self, pid: int, when: str) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            self.killed[when] += 1
        except ProcessLookupError:
            pass

    def _verified(self, key: tuple[str, int]) -> bool:
        board, seed = key
        if not self.db.exists():
            return False
        with sqlite3.connect(self.db, timeout=30) as c:
            return c.execute("SELECT COUNT(*) FROM measurements WHERE board = ? AND substr(model_sha256, 1, 8) = ?"
                             " AND verified = 1", (board, f"{seed:08x}")).fetchone()[0] > 0


def test_four_processes_sharing_one_db_end_with_one_verified_row_per_model(ten_models, tmp_path):
    """Two processes per board, all on the same ten models and the same DB, while the first attempt at
    each model on each board fails, before or after another process's verified attempt is recorded:
    every (board, model) ends with one verified row."""
    folder, runs, db = tmp_path / "models", tmp_path / "runs", tmp_path / "shared.db"
    folder.mkdir()
    runs.mkdir()
    for path in ten_models:
        (folder / path.name).write_bytes(path.read_bytes())
    failures = _FailingFirstAttempts(runs, db)
    failures.start()
    boards = ["mps2-an386", "mps2-an386", "mps2-an500", "mps2-an500"]
    collections = [_hwbench("collect", "--board", board, "--models", str(folder), "--db", str(db), "--repeats", "1",
                            runs=runs, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for board in boards]
    outputs = [c.communicate(timeout=600) for c in collections]
    failures.done.set()
    failures.join()
    assert [c.returncode for c in collections] == [0] * 4, [err for _, err in outputs]
    assert failures.killed["at once"] >= 5 and failures.killed["after a success"] >= 3, failures.killed
    rows = sqlite3.connect(db).execute("SELECT board, model_sha256, status, verified FROM measurements").fetchall()
    shas = {hashlib.sha256(p.read_bytes()).hexdigest() for p in ten_models}
    assert sorted((b, s) for b, s, _, _ in rows) == sorted((b, s) for b in set(boards) for s in shas)
    assert {(status, verified) for _, _, status, verified in rows} == {("measured", 1)}
    assert emulators_under(runs) == {}
    print(f"\nfirst attempts killed: {failures.killed}; {len(rows)} verified rows")


@pytest.fixture(scope="module")
def slow_models():
    """Two convolutions with ~7.6 M MACs: at 100 repeats one run takes tens of seconds."""
    import keras
    from keras_ops import int8_model

    def build(x):
        return keras.layers.Conv2D(32, 3, activation="relu")(keras.layers.Conv2D(16, 3, activation="relu")(x))

    return [int8_model(build, [(40, 40, 8)], seed=seed) for seed in (0, 1)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_every_emulator_and_keeps_the_finished_models(signum, ten_models, slow_models, tmp_path):
    """Two quick models, then two that run for tens of seconds on two emulators; the signal comes
    while those run. hwbench must exit with its emulators gone (no wall-clock bound: these machines
    are shared), the quick models must be in the DB, and the interrupted ones must not be recorded."""
    folder, runs, db = tmp_path / "models", tmp_path / "runs", tmp_path / "r.db"
    folder.mkdir()
    runs.mkdir()
    for i, path in enumerate(ten_models[:2]):
        (folder / f"a{i}.tflite").write_bytes(path.read_bytes())
    for i, blob in enumerate(slow_models):
        (folder / f"b{i}.tflite").write_bytes(blob)
    collection = _hwbench("collect", "--board", "mps2-an386", "--models", str(folder), "--db", str(db), "--jobs", "2",
                          "--repeats", "100", runs=runs, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (measurement_count(db) == 2 and len(emulators_under(runs)) == 2):
            assert collection.poll() is None, collection.communicate()
            time.sleep(0.02)
        assert len(emulators_under(runs)) == 2, "the slow models never ran side by side"
        collection.send_signal(signum)
        sent = time.monotonic()
        _, err = collection.communicate(timeout=60)
        exited_after = time.monotonic() - sent
        while emulators_under(runs) and time.monotonic() - sent < exited_after + 10:  # killed ones being reaped
            time.sleep(0.01)
        left = emulators_under(runs)
    finally:
        collection.kill()
        for pid in emulators_under(runs):
            os.kill(pid, signal.SIGKILL)
    print(f"\n{signum.name}: hwbench exited {collection.returncode} after {exited_after:.2f} s")
    assert left == {}  # no emulator outlives hwbench (the slow runs would take tens of seconds more)
    assert collection.returncode == 128 + signum
    assert err.strip().splitlines()[-1] == ("error: interrupted" if signum == signal.SIGINT
                                            else f"error: terminated ({signum.name})")
    rows = sqlite3.connect(db).execute("SELECT m.name, s.status, s.verified FROM measurements s JOIN models m"
                                       " ON m.sha256 = s.model_sha256 ORDER BY m.name").fetchall()
    assert rows == [("a0.tflite", "measured", 1), ("a1.tflite", "measured", 1)]


def test_an_exception_in_one_model_is_recorded_and_the_collection_goes_on(ten_models, tmp_path, monkeypatch):
    """A bug in the reference interpreter for one model: that model is `failed` with the exception in
    its reason; the others are measured and recorded as usual."""
    victim = ten_models[1].read_bytes()
    real = collect_module.reference_run

    def buggy(data, *args):
        if data == victim:
            raise ZeroDivisionError("division by zero in the reference")
        return real(data, *args)

    monkeypatch.setattr(collect_module, "reference_run", buggy)
    db = ResultsDB(tmp_path / "r.db")
    recorded = {m.model: m for m in collect(get_board("mps2-an386"), ten_models[:4], db, repeats=1, jobs=2)}
    failed = recorded.pop(ten_models[1].name)
    assert (failed.status, failed.reason) == ("failed", "ZeroDivisionError: division by zero in the reference")
    assert failed.macs > 0 and failed.arena_bytes > 0  # what was known before the failure is kept
    assert len(recorded) == 3 and all(m.status == "measured" and m.verified for m in recorded.values())
    assert sorted(db.measurements()["status"]) == ["failed", "measured", "measured", "measured"]


def test_a_board_that_cannot_be_reached_is_refused_before_any_model_is_generated(tmp_path, capsys):
    """No debug probe is connected here: the real board is refused before anything is generated."""
    code, _, err = run_cli(capsys, "collect", "--board", "nucleo-f746zg", "--count", "2", "--db", str(tmp_path / "r.db"))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "no debug probe found" in err
    assert list(tmp_path.iterdir()) == []  # no models, no DB


def test_a_bug_is_one_line_with_its_own_exit_code_and_a_traceback_under_verbose(capsys, monkeypatch):
    import hwbench.boards

    def broken():
        raise KeyError("board index")

    monkeypatch.setattr(hwbench.boards, "list_boards", broken)
    code, _, err = run_cli(capsys, "boards")
    assert code == INTERNAL_ERROR != 1
    assert err.strip() == ("error: internal error (a bug in hwbench): KeyError: 'board index' — run with -v for the "
                           "traceback")
    code, _, err = run_cli(capsys, "-v", "boards")
    assert code == INTERNAL_ERROR and "Traceback (most recent call last)" in err and "in broken" in err
