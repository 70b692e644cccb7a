"""`hwbench collect`: run every model on a board and store per-layer counts with proof that the
board computed what TFLite computes.

For each model: compile the plan; skip (and record why) a model that does not fit the board's
SRAM or flash; run the firmware under a timeout; parse what it printed; recompute the output on
the host with TFLite's reference kernels for the same seeded input; record counts, verified or
not. Models run in parallel (`jobs` emulators); only the calling thread writes the DB, one
transaction per model.

May import: the core and every other part of `firmware_runner` (it is the top of the stack).
"""

from __future__ import annotations

import hashlib
import statistics
import struct
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hwbench.boards import Board
from hwbench.costs import graph_cost
from hwbench.errors import HwbenchError
from hwbench.results import LayerCount, Measurement, ResultsDB
from hwbench.tflite_reader import parse_tflite
from firmware_runner.backends import Backend, backend_for
from firmware_runner.firmware.build import RUN_HEADER_SIZE, Firmware, build_firmware
from firmware_runner.compiler.plan import compile_plan
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
    """Run one model on the board; every failure becomes a recorded reason, never an exception.
    `fast`: the kernel paths to compile for (hwbench.kernel_paths; None: the default ones, which is
    what `collect` records)."""
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    base = dict(model=path.name, sha256=sha, board=board.name, runtime_hash=firmware.runtime_hash, unit=backend.unit,
                tflite=data, macs=0, weight_bytes=0)
    try:
        graph = parse_tflite(data, path.name)
        cost = graph_cost(graph)
        base.update(macs=cost.macs, weight_bytes=cost.weight_bytes)
        plan = compile_plan(graph, fast=fast)
    except HwbenchError as e:
        return Measurement(**base, status="skipped", reason=str(e))
    blob = plan.blob
    base.update(arena_bytes=plan.arena_size, plan_bytes=len(blob))
    if plan.arena_size > firmware.arena_capacity:
        return Measurement(**base, status="skipped", reason=f"arena {plan.arena_size:,} B does not fit the "
                           f"{firmware.arena_capacity:,} B of SRAM left beside the firmware")
    if firmware.flash_used + RUN_HEADER_SIZE + len(blob) > firmware.flash_limit:
        return Measurement(**base, status="skipped", reason=f"plan {len(blob):,} B and firmware "
                           f"{firmware.flash_used:,} B do not fit {firmware.flash_limit:,} B of flash")
    seed = input_seed(sha)
    limit = timeout if timeout is not None else default_timeout(cost.macs, repeats)
    run = backend.run(firmware, run_image(blob, seed, repeats), limit)
    report = parse_output(run.output)
    base.update(repeats=repeats, input_seed=seed, seconds=run.seconds, stack_bytes=report.stack_bytes)
    problem = _problem(report, run, firmware, limit, plan, repeats)
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


def _problem(report: BoardReport, run, firmware: Firmware, limit: float, plan, repeats: int) -> str | None:
    """Why a board run cannot be used, or None."""
    if report.fault:
        return report.fault
    if report.error:
        return f"board reported error {report.error}"
    if run.timed_out:
        return f"no answer within {limit:.0f} s (last line: {report.last_line!r})"
    if not report.done:
        return f"board stopped without finishing (exit code {run.exit_code}, last line: {report.last_line!r})"
    if report.firmware_hash != firmware.runtime_hash or report.protocol != PROTOCOL_VERSION:
        return f"board runs firmware {report.firmware_hash}, expected {firmware.runtime_hash}"
    complete = (len(report.totals) == repeats and report.ops == len(plan.ops) and
                all(len(report.layers.get(r, {})) == len(plan.ops) for r in range(repeats)))
    if not complete:
        return f"incomplete report ({report.damaged} damaged line(s))"
    return None


def collect(board: Board, models: Sequence[Path], db: ResultsDB, repeats: int = DEFAULT_REPEATS, jobs: int = 1,
            limits: Board | None = None, timeout: float | None = None,
            progress: Callable[[Measurement | None], None] | None = None) -> list[Measurement]:
    """Measure `models` on `board` that the DB does not have yet; returns what this call recorded.
    `progress(None)` is called once per model skipped because it is already in the DB."""
    firmware = build_firmware(board, limits)
    backend = backend_for(board)
    done = db.finished(board.name, firmware.runtime_hash)
    todo = []
    for path in models:
        if hashlib.sha256(path.read_bytes()).hexdigest() in done:
            if progress:
                progress(None)
        else:
            todo.append(path)
    recorded = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(measure, path, board, firmware, backend, repeats, timeout) for path in todo]
        try:
            for future in as_completed(futures):
                m = future.result()
                db.record(m)
                recorded.append(m)
                if progress:
                    progress(m)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return recorded


def model_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.tflite"))
    if not files:
        raise HwbenchError(f"{folder}: no .tflite models in this folder")
    return files


def summarize(measurements: Iterable[Measurement]) -> dict[str, dict[str, int]]:
    """{status: {reason (first line, shortened): how many}}"""
    summary: dict[str, dict[str, int]] = {}
    for m in measurements:
        reason = "verified bit-exact" if m.status == "measured" else (m.reason or "").split("\n")[0][:90]
        summary.setdefault(m.status, {}).setdefault(reason, 0)
        summary[m.status][reason] += 1
    return summary
