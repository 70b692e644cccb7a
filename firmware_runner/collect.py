"""`hwbench collect`: run every model on a board and store per-layer counts with proof that the
board computed what TFLite computes.

For each model: compile the plan; skip (and record why) a model that does not fit the board's
SRAM or flash; run the firmware under a timeout; parse what it printed; recompute the output on
the host with TFLite's reference kernels for the same seeded input; record counts, verified or
not. Anything else that goes wrong with one model is recorded as its failure, and the collection
goes on. Models run in parallel (`jobs` emulators); only the calling thread writes the DB, one
transaction per model, and other processes may be collecting into the same DB meanwhile.

May import: the core and every other part of `firmware_runner` (it is the top of the stack).
"""

from __future__ import annotations

import hashlib
import statistics
import struct
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hwbench.boards import Board
from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError
from hwbench.graph import Graph
from hwbench.results import LayerCount, Measurement, ResultsDB
from hwbench.tflite_reader import parse_tflite
from firmware_runner.backends import Backend, BoardRun, backend_for
from firmware_runner.firmware.build import RUN_HEADER_SIZE, Firmware, build_firmware
from firmware_runner.compiler.plan import Plan, compile_plan
from firmware_runner.firmware.protocol import PROTOCOL_VERSION, BoardReport, input_values, parse_output
from firmware_runner.runtime.reference import reference_run

RUN_MAGIC = 0x52425748  # "HWBR", firmware/bench.c
DEFAULT_REPEATS = 3
INSTRUCTIONS_PER_SECOND = 2e8  # a cautious emulation speed for the default timeout


def run_image(blob: bytes, seed: int, repeats: int) -> bytes:
    """Run header (bench.c) + plan: what goes to the board's plan address."""
    return struct.pack("<4I", RUN_MAGIC, seed, repeats, len(blob)) + blob


def input_seed(sha256: str) -> int:
    """The seed of a model's input: fixed by the model, so every board sees the same input."""
    return int(sha256[:8], 16) or 1


def default_timeout(macs: int, repeats: int) -> float:
    # Generous: ~60 instructions per MAC, warm-up + two passes per repeat, plus start-up.
    return 20.0 + macs * 60 * (1 + 2 * repeats) / INSTRUCTIONS_PER_SECOND


def measure(path: Path, board: Board, firmware: Firmware, backend: Backend, repeats: int = DEFAULT_REPEATS,
            timeout: float | None = None, fast: bool | None = None) -> Measurement:
    """Run one model on the board. Every failure becomes a recorded reason, never an exception: a model
    hwbench cannot compile or that does not fit is `skipped`; anything else that goes wrong (the board,
    the reference interpreter, a bug in hwbench) makes it `failed`, with the exception in the reason.
    `fast`: the kernel paths to compile for (hwbench.kernel_paths; None: the board's, which is what
    `collect` records)."""
    data = _read(path)
    base = dict(model=path.name, sha256=hashlib.sha256(data).hexdigest(), board=board.name,
                runtime_hash=firmware.runtime_hash, unit=backend.unit, tflite=data, macs=0, weight_bytes=0)
    try:
        return _measure(data, base, firmware, backend, repeats, timeout, firmware.fast_paths if fast is None else fast)
    except Exception as e:  # noqa: BLE001 (one model's failure, whatever its cause, must not end the collection)
        return Measurement(**base, status="failed", reason=f"{type(e).__name__}: {e}")


def fit_problem(plan: Plan, firmware: Firmware) -> str | None:
    """Why a compiled plan does not fit the board beside its firmware, or None when it does."""
    blob = plan.blob
    table = firmware.table_size(blob)  # the runtime decodes the plan into it, before the arena
    if table + plan.arena_size > firmware.arena_capacity:
        return (f"memory {table + plan.arena_size:,} B (decoded op table {table:,} B + arena {plan.arena_size:,} B) "
                f"does not fit the {firmware.arena_capacity:,} B of SRAM left beside the firmware")
    if firmware.flash_used + RUN_HEADER_SIZE + len(blob) > firmware.flash_limit:
        return (f"plan {len(blob):,} B and firmware {firmware.flash_used:,} B do not fit "
                f"{firmware.flash_limit:,} B of flash")
    return None


@dataclass(frozen=True)
class RunsOn:
    """The check of a model generated for a board (hwbench.generate's `check`): why collect would
    skip it there (the hwbench runtime cannot compile it, or it does not fit beside the firmware),
    None when it would run. `limits`: as build_firmware's."""

    board: Board
    limits: Board | None = None

    @property
    def name(self) -> str:
        """What a population's manifest records of the check."""
        return f"runs on {self.board.name}" + (f" within {self.limits.name}'s memory" if self.limits else "")

    def __call__(self, graph: Graph) -> str | None:
        firmware = build_firmware(self.board, self.limits)
        try:
            plan = compile_plan(graph, fast=firmware.fast_paths)
        except HwbenchError as e:
            return str(e)
        return fit_problem(plan, firmware)


def _measure(data: bytes, base: dict, firmware: Firmware, backend: Backend, repeats: int,
             timeout: float | None, fast: bool) -> Measurement:
    """`measure` without its safety net; fills `base` as it learns the model's sizes, so that a
    failure still records them."""
    try:
        graph = parse_tflite(data, base["model"])
        cost = graph_cost(graph)
        base.update(macs=cost.macs, weight_bytes=cost.weight_bytes)
        plan = compile_plan(graph, fast=fast)
    except HwbenchError as e:
        return Measurement(**base, status="skipped", reason=str(e))
    blob = plan.blob
    base.update(arena_bytes=plan.arena_size, plan_bytes=len(blob))
    problem = fit_problem(plan, firmware)
    if problem:
        return Measurement(**base, status="skipped", reason=problem)
    seed = input_seed(base["sha256"])
    limit = timeout if timeout is not None else default_timeout(cost.macs, repeats)
    run = backend.run(firmware, run_image(blob, seed, repeats), limit)
    report = parse_output(run.output)
    base.update(repeats=repeats, input_seed=seed, seconds=run.seconds, stack_bytes=report.stack_bytes)
    if report.arena_bytes is not None:  # the arena the board's runtime laid out, in its own words
        base.update(arena_bytes=report.arena_bytes)
    problem = _problem(report, run, firmware, plan, repeats)
    if problem:
        return Measurement(**base, status="failed", reason=problem)

    expected, _ = reference_run(data, graph, input_values(graph, seed))
    got = [bytes(report.outputs.get(i, b"")) for i in range(len(expected))]
    differing = sum(e.nbytes - sum(a == b for a, b in zip(e.tobytes(), g)) for e, g in zip(expected, got))
    cal = report.calibration_ticks or 0
    totals = [backend.count(report.totals[r] - cal) for r in range(repeats)]
    layers = [LayerCount(step, op.graph_index, op.type,
                         backend.count(statistics.median(report.layers[r][step] - cal for r in range(repeats))))
              for step, op in enumerate(plan.ops)]
    measurement = Measurement(**base, status="measured", verified=differing == 0, count=statistics.median(totals),
                              totals=totals, layers=layers)
    if differing:
        measurement.status = "failed"
        measurement.reason = f"output differs from the TFLite reference in {differing} byte(s)"
    return measurement


def _problem(report: BoardReport, run: BoardRun, firmware: Firmware, plan, repeats: int) -> str | None:
    """Why a board run cannot be used, or None."""
    if report.fault:
        return report.fault
    if report.error:
        return f"board reported error {report.error}"
    if run.problem:
        return run.problem
    if run.killed:
        return f"{run.killed} (last line: {report.last_line!r})"
    if not report.done:
        return f"board stopped without finishing (exit code {run.exit_code}, last line: {report.last_line!r})"
    if report.firmware_hash != firmware.runtime_hash or report.protocol != PROTOCOL_VERSION:
        return f"board runs firmware {report.firmware_hash}, expected {firmware.runtime_hash}"
    settings = report.settings_problem(firmware.clock_hz, firmware.settings)
    if settings:
        return settings
    complete = (len(report.totals) == repeats and report.ops == len(plan.ops) and
                all(len(report.layers.get(r, {})) == len(plan.ops) for r in range(repeats)))
    if not complete:
        return f"incomplete report ({report.damaged} damaged line(s))"
    return None


def check_board(board: Board, limits: Board | None = None, **reach) -> Backend:
    """Fail now, before any model is generated or read, if `board` cannot be collected on: no way to
    reach it (an emulator; a probe, its serial port and pyOCD's target, found with `reach`: probe,
    port, pack), no firmware support for it, no cross toolchain. Returns the backend to collect with."""
    backend = backend_for(board, **reach)
    build_firmware(board, limits)
    return backend


def collect(board: Board, models: Sequence[Path], db: ResultsDB, repeats: int = DEFAULT_REPEATS, jobs: int = 1,
            limits: Board | None = None, timeout: float | None = None,
            progress: Callable[[Measurement | None], None] | None = None,
            backend: Backend | None = None) -> list[Measurement]:
    """Measure `models` on `board` that the DB does not have yet; returns what this call recorded.
    A model another process finished meanwhile is not run (or not recorded) again; `progress(None)`
    is called once for each model the DB already has. On any exception, Ctrl-C included, the runs in
    progress are stopped, the models finished by then are recorded, and the exception goes on.
    `backend`: how to reach the board (default: `backend_for(board)`)."""
    firmware = build_firmware(board, limits)
    backend = backend or backend_for(board)
    todo = [(path, hashlib.sha256(_read(path)).hexdigest()) for path in reversed(models)]  # popped from the end
    recorded: list[Measurement] = []
    progress = progress or (lambda m: None)

    def store(m: Measurement) -> None:
        stored = db.record(m)
        if stored:
            recorded.append(m)
        progress(m if stored else None)

    running: set[Future] = set()  # submitted, not recorded yet
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            while todo or running:
                finished = db.finished(board.name, firmware.runtime_hash) if todo else set()
                while todo and len(running) < jobs:  # no queue: each model is checked just before it starts
                    path, sha = todo.pop()
                    if sha in finished:
                        progress(None)
                    else:
                        running.add(pool.submit(measure, path, board, firmware, backend, repeats, timeout))
                for future in wait(running, return_when=FIRST_COMPLETED).done:
                    running.discard(future)
                    store(future.result())
        except BaseException:
            done = [f for f in running if f.done()]  # before the stop, which ends the others as failures
            backend.stop()
            for future in done:
                store(future.result())
            raise
    return recorded


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise HwbenchError(f"{path}: cannot read this model ({e.strerror})") from None


def model_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.tflite"))
    if not files:
        raise HwbenchError(f"{folder}: no .tflite models in this folder")
    return files


def summary_rows(measurements: Iterable[Measurement]) -> list[dict]:
    """Rows of (status, reason: its first line, shortened; models: how many), the most common
    reason of each status first."""
    counts: dict[str, dict[str, int]] = {}
    for m in measurements:
        reason = "verified bit-exact" if m.status == "measured" else (m.reason or "").split("\n")[0][:90]
        counts.setdefault(m.status, {}).setdefault(reason, 0)
        counts[m.status][reason] += 1
    return [{"status": status, "reason": reason, "models": n}
            for status, reasons in counts.items() for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])]


def measurement_summary(m: Measurement) -> dict:
    """What `collect --json` reports of one model run now."""
    return {"model": m.model, "sha256": m.sha256, "status": m.status, "reason": m.reason, "verified": m.verified,
            "count": m.count, "unit": m.unit, "arena_bytes": m.arena_bytes, "stack_bytes": m.stack_bytes}
