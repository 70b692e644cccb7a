"""`hwbench collect` on the emulated boards: real QEMU, real arm-none-eabi-gcc, the real results DB.
Every model's output on the board must equal TFLite's reference bit for bit, and counts must be
identical from one run to the next."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hwbench.boards import get_board, list_boards
from conftest import MLPERF_TINY, emulators_under, measurement_count, run_cli
from hwbench.generate import generate_models
from hwbench.graph import KNOWN_OPS
from hwbench.results import ResultsDB
from firmware_runner.backends.qemu import MAX_OUTPUT, QemuBackend
from firmware_runner.collect import collect, measure, run_image
from firmware_runner.firmware.build import build_firmware
from firmware_runner.compiler.plan import compile_plan
from firmware_runner.firmware.protocol import parse_output

EMULATED = ["mps2-an386", "mps2-an500"]


@pytest.mark.parametrize("board_name", EMULATED)
def test_generated_models_run_bit_exact_and_deterministic(board_name, ten_models, tmp_path):
    board = get_board(board_name)
    first = {m.model: m for m in collect(board, ten_models, ResultsDB(tmp_path / "a.db"), repeats=2, jobs=2)}
    assert len(first) == 10
    assert all(m.status == "measured" and m.verified for m in first.values()), \
        [(m.model, m.status, m.reason) for m in first.values() if m.status != "measured"]
    for m in first.values():
        assert m.unit == "instructions" and m.count > 0 and len(m.layers) > 0
        assert m.count >= sum(l.count for l in m.layers) * 0.9  # the whole run holds its layers
    again = {m.model: m for m in collect(board, ten_models[:3], ResultsDB(tmp_path / "b.db"), repeats=2)}
    for name, m in again.items():
        assert m.totals == first[name].totals
        assert [l.count for l in m.layers] == [l.count for l in first[name].layers]


@pytest.mark.parametrize("board_name", EMULATED)
def test_generated_models_run_bit_exact_on_the_fast_paths(board_name, ten_models):
    """The kernels' fast paths, with the DSP instructions both boards have, against TFLite's reference."""
    board = get_board(board_name)
    firmware, backend = build_firmware(board), QemuBackend(board)
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda path: measure(path, board, firmware, backend, repeats=1, fast=True), ten_models))
    assert all((m.status, m.verified) == ("measured", True) for m in done), [(m.model, m.reason) for m in done]


@pytest.mark.parametrize("fast", [False, True], ids=["reference-paths", "fast-paths"])
@pytest.mark.parametrize("name", MLPERF_TINY)
def test_mlperf_tiny_models_run_bit_exact_on_mps2_an386(name, mlperf_model, fast):
    board = get_board("mps2-an386")
    firmware = build_firmware(board)
    m = measure(mlperf_model(name), board, firmware, QemuBackend(board), repeats=1, fast=fast)
    assert (m.status, m.verified) == ("measured", True), m.reason
    assert m.count > m.macs  # at least one instruction per MAC
    assert {l.op_type for l in m.layers} >= {"FULLY_CONNECTED"}


def test_mcunet_style_global_pooling_by_two_single_axis_means_runs_bit_exact_on_mps2_an386(tmp_path):
    """MCUNet's model zoo pools globally with a MEAN over the width, then one over the height."""
    from keras_ops import mcunet_style_model

    path = tmp_path / "mcunet_style.tflite"
    path.write_bytes(mcunet_style_model(seed=5))
    board = get_board("mps2-an386")
    m = measure(path, board, build_firmware(board), QemuBackend(board), repeats=1)
    assert (m.status, m.verified) == ("measured", True), m.reason
    assert [l.op_type for l in m.layers].count("MEAN") == 2 and all(l.count > 0 for l in m.layers)


@pytest.mark.parametrize("board_name", [board.name for board in list_boards() if board.emulated])
def test_a_model_mixing_every_operator_runs_bit_exact_on_the_board(board_name, tmp_path):
    """Every operator the runtime runs in one model, with float input and output, on the emulated
    MCU: float arithmetic (QUANTIZE, DEQUANTIZE) on the board's FPU, or in software on the cores
    without one (M0, M3), must still match TFLite."""
    from keras_ops import mixed_operator_model

    path = tmp_path / "mixed.tflite"
    path.write_bytes(mixed_operator_model(seed=3))
    board = get_board(board_name)
    m = measure(path, board, build_firmware(board), QemuBackend(board), repeats=1)
    assert (m.status, m.verified) == ("measured", True), m.reason
    assert {l.op_type for l in m.layers} == KNOWN_OPS - {"SQUEEZE"}  # the converter writes squeezes as RESHAPE


def test_memory_of_a_small_board_skips_what_does_not_fit(ten_models, tmp_path):
    from hwbench.tflite_reader import read_tflite
    from firmware_runner.firmware.build import STACK_SIZE, stack_size

    board = get_board("mps2-an386")
    arenas = sorted(compile_plan(read_tflite(path)).arena_size for path in ten_models)
    sram_kib = (arenas[len(arenas) // 2] + STACK_SIZE) // 1024 + 1  # about half the models fit
    small = tmp_path / "tiny.toml"
    small.write_text((Path(__file__).parents[1] / "boards" / "nucleo-f411re.toml").read_text()
                     .replace('name = "nucleo-f411re"', 'name = "tiny"')
                     .replace('size = "128 KiB"', f'size = "{sram_kib} KiB"'))
    limits = get_board(str(small))
    measured = collect(board, ten_models, ResultsDB(tmp_path / "r.db"), repeats=1, jobs=2, limits=limits)
    skipped = [m for m in measured if m.status == "skipped"]
    fitting = [m for m in measured if m.status == "measured"]
    assert skipped and fitting
    firmware = build_firmware(board, limits)
    assert firmware.arena_capacity <= sram_kib * 1024 - stack_size(sram_kib * 1024)
    memory = {path.name: firmware.memory_size(compile_plan(read_tflite(path)).blob) for path in ten_models}
    assert all(memory[m.model] > firmware.arena_capacity and "does not fit" in m.reason for m in skipped)
    assert all(memory[m.model] <= firmware.arena_capacity and m.verified for m in fitting)


def test_a_model_whose_arena_fits_but_not_its_decoded_table_is_skipped_saying_both(ten_models):
    """The runtime decodes a plan's ops into a table before the arena, in the same SRAM: a capacity one
    byte short of both skips the model before it runs, naming the two sizes; the capacity of both
    runs it bit-exact."""
    import dataclasses

    from hwbench.tflite_reader import read_tflite

    board = get_board("mps2-an386")
    firmware = build_firmware(board)
    path = ten_models[0]
    plan = compile_plan(read_tflite(path))
    needed = firmware.memory_size(plan.blob)
    table = needed - plan.arena_size
    assert table >= 16 * len(plan.ops)  # a run function, operand pointers and counts per op, at the least
    short = dataclasses.replace(firmware, arena_capacity=needed - 1)
    assert plan.arena_size <= short.arena_capacity
    skipped = measure(path, board, short, QemuBackend(board), repeats=1)
    assert skipped.status == "skipped", skipped.reason
    for size in (needed, table, plan.arena_size, needed - 1):
        assert f"{size:,} B" in skipped.reason
    exact = measure(path, board, dataclasses.replace(firmware, arena_capacity=needed), QemuBackend(board), repeats=1)
    assert (exact.status, exact.verified) == ("measured", True), exact.reason


def test_a_corrupted_plan_is_reported_by_the_board(ten_models):
    from hwbench.tflite_reader import read_tflite

    board = get_board("mps2-an386")
    firmware = build_firmware(board)
    blob = bytearray(compile_plan(read_tflite(ten_models[0])).blob)
    blob[len(blob) // 2] ^= 0x40  # damaged after the compiler computed the CRC
    run = QemuBackend(board).run(firmware, run_image(bytes(blob), 1, 1), timeout=30)
    report = parse_output(run.output)
    assert report.error == "14: CRC_mismatch" and not report.done and run.exit_code == 2


def test_garbage_on_the_serial_stream_is_tolerated(ten_models):
    board = get_board("mps2-an386")
    firmware = build_firmware(board)
    from hwbench.tflite_reader import read_tflite

    plan = compile_plan(read_tflite(ten_models[1]))
    clean = QemuBackend(board).run(firmware, run_image(plan.blob, 5, 2), timeout=60).output
    lines = clean.splitlines()
    damaged = lines[3].replace("@TOTAL 0", "@TOTAL 9")  # checksum no longer matches
    noisy = "\x00\xff boot: ok\r\n" + "\n".join(
        ["garbage \x1b[2J" + lines[0], *lines[1:3], damaged, lines[3], "@@@#zz", *lines[4:]])
    a, b = parse_output(clean), parse_output(noisy)
    assert b.damaged == 1 and b.done and a.done
    assert (a.totals, a.layers, a.outputs, a.stack_bytes) == (b.totals, b.layers, b.outputs, b.stack_bytes)


def _bare_firmware(tmp_path: Path, body: str):
    """The an386's firmware record with its ELF replaced by `void spin(void) { body }` as reset handler."""
    real = build_firmware(get_board("mps2-an386"))
    source = tmp_path / "bare.c"
    source.write_text(f"void spin(void) {{ {body} }}\n"
                      "__attribute__((section(\".vectors\"), used)) static void (*const v[2])(void) = "
                      "{(void (*)(void))0x20010000, spin};\n")
    elf = tmp_path / "bare.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib", "-Wl,--section-start=.vectors=0",
                    "-Wl,-e,spin", "-o", str(elf), str(source)], check=True)
    return type(real)(**{**real.__dict__, "elf": elf})


def test_a_board_that_never_answers_is_timed_out_and_recorded(ten_models, tmp_path):
    """Firmware that spins forever without printing: the run is killed and recorded as failed."""
    board = get_board("mps2-an386")
    silent = _bare_firmware(tmp_path, "for (;;) {}")
    start = time.monotonic()
    m = measure(ten_models[0], board, silent, QemuBackend(board), repeats=1, timeout=2)
    assert time.monotonic() - start < 30
    assert m.status == "failed" and "no answer within 2 s" in m.reason


def test_a_board_that_prints_without_end_is_cut_at_the_output_limit(ten_models, tmp_path):
    """Firmware that prints 'x' forever on the CMSDK UART: the host keeps at most the backend's output
    limit, kills the emulator and records why."""
    board = get_board("mps2-an386")
    chatty = _bare_firmware(tmp_path, f"volatile unsigned *uart = (volatile unsigned *){board.uart.base:#x}u; "
                                      "uart[2] = 1u; for (;;) { while (uart[1] & 1u) {} uart[0] = 'x'; }")
    backend = QemuBackend(board, max_output=100_000)  # QEMU's UART gives ~150 KB/s: MAX_OUTPUT would take 30 s
    assert MAX_OUTPUT >= 2 ** 20
    run = backend.run(chatty, b"", timeout=600)
    assert run.exit_code is None and run.killed == "more than 100,000 bytes of output"
    assert len(run.output) == 100_000 and set(run.output) == {"x"}
    m = measure(ten_models[0], board, chatty, backend, repeats=1, timeout=600)
    assert m.status == "failed" and m.reason.startswith("more than 100,000 bytes of output (last line: 'xxx")


def test_a_hard_fault_is_reported_by_the_fault_handler(tmp_path):
    """The firmware's own start-up and fault handler, with a main that executes an undefined
    instruction: the board prints a FAULT line and stops with exit code 3."""
    from hwbench.boards import get_board, list_boards
    from firmware_runner.firmware.build import COMMON_FLAGS, FIRMWARE_DIR, LINK_FLAGS, board_defines, board_flags
    from firmware_runner.runtime.host import compile_c, runtime_sources

    board = get_board("mps2-an386")
    real = build_firmware(board)
    main_c = tmp_path / "fault_main.c"
    main_c.write_text("int main(void) { __asm__ volatile(\"udf #0\"); return 0; }\n")
    sources = [FIRMWARE_DIR / "startup.c", FIRMWARE_DIR / "protocol.c", FIRMWARE_DIR / "mps2.c", main_c,
               *runtime_sources()]
    elf = compile_c(tmp_path / "fault.elf", sources, (*COMMON_FLAGS, *board_flags(board), "-I", str(FIRMWARE_DIR),
                    *board_defines(board), *LINK_FLAGS, "-T", str(real.elf.parent / "link.ld")),
                    cc="arm-none-eabi-gcc")
    faulty = type(real)(**{**real.__dict__, "elf": elf})
    run = QemuBackend(board).run(faulty, b"", timeout=30)
    report = parse_output(run.output)
    assert run.exit_code == 3 and run.killed is None
    assert report.fault is not None and report.fault.startswith("hard fault at pc 0x")


def test_collect_resumes_after_sigkill(ten_models, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for path in ten_models[:6]:
        (folder / path.name).write_bytes(path.read_bytes())
    db, runs = tmp_path / "r.db", tmp_path / "runs"
    runs.mkdir()
    cmd = [sys.executable, "-m", "hwbench.cli", "collect", "--board", "mps2-an386", "--models", str(folder),
           "--db", str(db), "--repeats", "1"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "TMPDIR": str(runs)})
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and measurement_count(db) < 2:
            time.sleep(0.05)
        assert measurement_count(db) >= 2, "the collection never recorded two models"
    finally:
        process.kill()
        process.wait()
        deadline = time.monotonic() + 2  # an emulator forked just before may still be starting
        while time.monotonic() < deadline:
            for pid in emulators_under(runs):  # they die with hwbench where setpriv is installed; else we kill them
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = measurement_count(db)
    assert 2 <= before <= 6
    orphans = connection.execute("SELECT COUNT(*) FROM layers WHERE measurement_id NOT IN "
                                 "(SELECT id FROM measurements)").fetchone()[0]
    assert orphans == 0
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{6 - before} model(s) run now, {before} already in" in done.stdout
    assert measurement_count(db) == 6
    rows = connection.execute("SELECT COUNT(DISTINCT model_sha256), COUNT(*) FROM measurements").fetchone()
    assert rows == (6, 6)


def test_results_export_and_bad_databases(ten_models, tmp_path, capsys):
    db = tmp_path / "r.db"
    collect(get_board("mps2-an500"), ten_models[:2], ResultsDB(db), repeats=1)
    code, out, _ = run_cli(capsys, "results", "--db", str(db), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    for row in rows:
        assert {"model", "sha256", "board", "unit", "count", "macs", "status", "verified"} <= set(row)
        assert row["unit"] == "instructions" and row["verified"] is True and row["board"] == "mps2-an500"
    code, out, _ = run_cli(capsys, "results", "--db", str(db), "--json")
    assert code == 0 and json.loads(out) == rows
    code, out, _ = run_cli(capsys, "results", "--db", str(db), "--format", "csv", "--layers")
    assert code == 0 and out.splitlines()[0].startswith("model,sha256,board,unit,step")
    code, _, _ = run_cli(capsys, "results", "--db", str(db), "--format", "parquet", "--out", str(tmp_path / "r.pq"))
    import pandas as pd
    assert code == 0 and len(pd.read_parquet(tmp_path / "r.pq")) == 2

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    code, out, err = run_cli(capsys, "results", "--db", str(garbage))
    assert code == 1 and err.startswith("error:") and "garbage.db" in err and len(err.strip().splitlines()) == 1
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    code, _, err = run_cli(capsys, "collect", "--board", "mps2-an386", "--models", str(tmp_path), "--db", str(other))
    assert code == 1 and "not a hwbench results database" in err


def test_collect_json_reports_every_model_run_now_and_what_was_already_in(ten_models, tmp_path, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    for model in ten_models[:2]:
        shutil.copy(model, folder / model.name)
    args = ("collect", "--board", "mps2-an386", "--models", str(folder), "--db", str(tmp_path / "r.db"),
            "--repeats", "1", "--json")
    code, out, err = run_cli(capsys, *args)
    report = json.loads(out)
    assert code == 0, err
    assert (report["board"], report["models"], report["run_now"], report["already_in"]) == ("mps2-an386", 2, 2, 0)
    assert report["summary"] == [{"status": "measured", "reason": "verified bit-exact", "models": 2}]
    stored = {r["sha256"]: r for r in json.loads(run_cli(capsys, "results", "--db", str(tmp_path / "r.db"), "--json")[1])}
    for m in report["measurements"]:
        assert m["verified"] is True and m["unit"] == "instructions" and m["count"] == stored[m["sha256"]]["count"]
    code, out, _ = run_cli(capsys, *args)
    again = json.loads(out)
    assert code == 0 and (again["run_now"], again["already_in"], again["measurements"]) == (0, 2, [])


def test_collect_count_reruns_rebuild_nothing_and_collect_only_the_manifests_models(tmp_path, capsys):
    db = tmp_path / "r.db"
    args = ("collect", "--board", "mps2-an386", "--count", "2", "--seed", "5", "--db", str(db), "--repeats", "1",
            "--json")
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and json.loads(out)["run_now"] == 2, err
    folder = tmp_path / "models-seed5"
    built = {p: p.stat().st_mtime_ns for p in folder.glob("*.tflite")}
    shutil.copy(folder / "model_0000.tflite", folder / "model_0009.tflite")  # as an earlier, larger --count leaves
    code, out, err = run_cli(capsys, *args)
    report = json.loads(out)
    assert code == 0 and (report["models"], report["run_now"], report["already_in"]) == (2, 0, 2), err
    assert {p: p.stat().st_mtime_ns for p in built} == built  # not rebuilt


def test_collect_count_generates_only_models_that_run_within_the_boards_memory(tmp_path, capsys):
    """Within a small board's bounds (activations in half its SRAM), some models' decoded op table and
    arena together do not fit the SRAM its firmware leaves: `collect --count` draws those again, so
    every model it generates runs, and its manifest names the check."""
    from hwbench.generate import bounds_for
    from hwbench.tflite_reader import read_tflite
    from firmware_runner.collect import RunsOn

    small = tmp_path / "small.toml"
    small.write_text((Path(__file__).parents[1] / "boards" / "nucleo-f411re.toml").read_text()
                     .replace('name = "nucleo-f411re"', 'name = "small"').replace('size = "128 KiB"', 'size = "8 KiB"'))
    board, limits = get_board("mps2-an386"), get_board(str(small))
    check = RunsOn(board, limits)
    unchecked = generate_models(6, seed=5, out_dir=tmp_path / "unchecked", bounds=bounds_for(board=limits))
    problems = [check(read_tflite(tmp_path / "unchecked" / e["file"])) for e in unchecked]
    assert any(p and "does not fit" in p for p in problems)  # the bounds alone let them through
    code, out, err = run_cli(capsys, "collect", "--board", board.name, "--memory-of", str(small), "--count", "6",
                             "--seed", "5", "--db", str(tmp_path / "r.db"), "--repeats", "1", "--json")
    report = json.loads(out)
    assert code == 0 and report["run_now"] == 6, err
    assert [(m["status"], m["verified"]) for m in report["measurements"]] == [("measured", True)] * 6
    manifest = [json.loads(line) for line in (tmp_path / "models-seed5" / "manifest.jsonl").read_text().splitlines()]
    assert {e["check"] for e in manifest} == {"runs on mps2-an386 within small's memory"}
    kept = {e["sha256"] for e in unchecked if not problems[e["index"]]}
    assert kept <= {e["sha256"] for e in manifest}  # a model that runs is the one the bounds alone give


def test_analyze_says_whether_the_runtime_runs_a_model_on_the_board_as_collect_finds(tmp_path, capsys):
    """The micro:bit's SRAM holds the arena of model 435 of seed 101 (within the board's bounds alone),
    but not its decoded op table beside it: `analyze --board` says the runtime does not run it, with
    the reason collect skips it for; of a model that runs, it says so."""
    from hwbench import generate
    from hwbench.generate import bounds_for

    board = get_board("microbit")
    fits_not, runs = tmp_path / "fits_not.tflite", tmp_path / "runs.tflite"
    fits_not.write_bytes(generate.make_model(101, 435, bounds_for(board=board))[1])
    runs.write_bytes(generate.make_model(101, 0, bounds_for(board=board))[1])
    measured = {m.model: m for m in collect(board, [fits_not, runs], ResultsDB(tmp_path / "r.db"), repeats=1)}
    assert measured[fits_not.name].status == "skipped" and measured[runs.name].verified
    code, out, err = run_cli(capsys, "analyze", str(fits_not), "--board", "microbit", "--json")
    fit = json.loads(out)["board"]
    assert code == 0 and fit["fits_sram"] and fit["runtime_runs"] is False, err
    assert fit["runtime_problem"] == measured[fits_not.name].reason
    code, out, err = run_cli(capsys, "analyze", str(runs), "--board", "microbit")
    assert code == 0 and "microbit: the hwbench runtime runs it" in out, err
