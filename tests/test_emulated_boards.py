"""Every emulated board, one QEMU machine each: its board file against QEMU's own memory map, counts
that convert exactly to instructions, the board-support files (the STM32F4 clock set-up that gives
up cleanly where QEMU models no RCC, no DSP instructions for cores without them), and generated and
MLPerf Tiny models collected bit-exact on the boards beyond mps2-an386 and mps2-an500 (those two
are covered in test_collect.py). Real QEMU, real arm-none-eabi-gcc."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from conftest import MLPERF_TINY
from hwbench.boards import DSP_CORES, Board, get_board, list_boards
from hwbench.errors import BoardError
from hwbench.generate import bounds_for, generate_models
from hwbench.results import ResultsDB
from hwbench.tflite_reader import read_tflite
from firmware_runner.backends.qemu import QemuBackend
from firmware_runner.collect import collect, measure
from firmware_runner.compiler.plan import compile_plan
from firmware_runner.firmware.build import (COMMON_FLAGS, FIRMWARE_DIR, LINK_FLAGS, Firmware, board_defines,
                                            board_flags, board_support, build_firmware)
from firmware_runner.firmware.protocol import parse_output
from firmware_runner.runtime.host import RUNTIME_DIR, compile_c

EMULATED = [board.name for board in list_boards() if board.emulated]
NEW = ["mps2-an385", "mps2-an505", "mps3-an547", "microbit", "netduinoplus2"]


# --- the board files against QEMU's machines --------------------------------------------------


def qemu_memory_map(machine: str) -> list[tuple[int, int, int, str, str]]:
    """(start, end, priority, kind, name) of every region the CPU sees, from QEMU's `info mtree -f`."""
    commands = [{"execute": "qmp_capabilities"},
                {"execute": "human-monitor-command", "arguments": {"command-line": "info mtree -f"}},
                {"execute": "quit"}]
    done = subprocess.run(["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none", "-serial",
                           "null", "-S", "-qmp", "stdio"], input="".join(json.dumps(c) + "\n" for c in commands),
                          capture_output=True, text=True, timeout=60)
    tree = next(reply["return"] for reply in map(json.loads, done.stdout.splitlines())
                if isinstance(reply.get("return"), str))
    view = next(v for v in tree.split("FlatView #") if 'AS "cpu-memory-0"' in v)
    line = re.compile(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio (-?\d+), ([^)]+)\): (.+)$")
    return [(int(m[1], 16), int(m[2], 16) + 1, int(m[3]), m[4], m[5]) for m in map(line.match, view.splitlines()) if m]


def covered_by_memory(regions, start: int, end: int) -> bool:
    """Whether RAM or ROM (behind a TrustZone memory protection controller on the Armv8-M images)
    backs every byte of [start, end)."""
    memory = sorted((s, e) for s, e, _, kind, name in regions
                    if kind in ("ram", "rom", "romd") or name.startswith("tz-mpc-upstream"))
    for s, e in memory:
        if s <= start < e:
            start = e
    return start >= end


@pytest.mark.parametrize("name", EMULATED)
def test_the_board_files_memory_and_uart_are_in_qemus_memory_map(name):
    board = get_board(name)
    regions = qemu_memory_map(board.qemu_machine)
    assert covered_by_memory(regions, board.flash.origin, board.flash.end)
    assert covered_by_memory(regions, board.sram.origin, board.sram.end)
    uart = [r for r in regions if r[0] <= board.uart.base < r[1]]
    assert uart and uart[0][2] > -1000  # a modelled device, not an "unimplemented" placeholder


# --- counting ---------------------------------------------------------------------------------

SPIN = 40_000  # iterations of a two-instruction loop

# Times a loop of known length twice (SPIN and 3 x SPIN iterations of SUBS + BNE) and the bare
# counter read, then executes an undefined instruction to check the fault path of every port.
PROBE_MAIN = f"""
#include <stdint.h>
#include "board.h"
#include "protocol.h"

__attribute__((noinline)) static void spin(uint32_t n) {{
    /* GCC hands Thumb-1 inline assembly over in divided syntax: ask for unified. */
    __asm__ volatile(".syntax unified\\n1: subs %0, %0, #1\\n bne 1b" : "+l"(n) : : "cc");
}}

int main(void) {{
    board_init();
    hwb_line line;
    uint32_t t0 = board_ticks();
    uint32_t t1 = board_ticks();
    line_begin(&line, "CAL");
    line_u32(&line, t1 - t0);
    line_end(&line);
    for (uint32_t run = 0; run < 2; run++) {{
        t0 = board_ticks();
        spin({SPIN}u * (1u + 2u * run));
        t1 = board_ticks();
        line_begin(&line, "TOTAL");
        line_u32(&line, run);
        line_u32(&line, 0);
        line_u32(&line, t1 - t0);
        line_end(&line);
    }}
    __asm__ volatile("udf #0");
    return 0;
}}
"""


def firmware_with_main(board: Board, source: str, folder: Path) -> Firmware:
    """The board's firmware with bench.c replaced by `source`: same start-up, board support, flags
    and linker script."""
    real = build_firmware(board)
    main_c = folder / "main.c"
    main_c.write_text(source)
    sources = [FIRMWARE_DIR / "startup.c", FIRMWARE_DIR / "protocol.c", board_support(board), main_c,
               RUNTIME_DIR / "hwb_runtime.c"]  # for the protocol's CRC; the kernels are never called
    flags = (*COMMON_FLAGS, *board_flags(board), *board_defines(board), "-I", str(FIRMWARE_DIR), *LINK_FLAGS,
             "-T", str(real.elf.parent / "link.ld"))
    return dataclasses.replace(real, elf=compile_c(folder / "probe.elf", sources, flags, cc="arm-none-eabi-gcc"))


@pytest.fixture(scope="module")
def probe_runs(tmp_path_factory):
    """Per board: the probe firmware's output, twice."""
    @cache
    def runs(name: str):
        board = get_board(name)
        firmware = firmware_with_main(board, PROBE_MAIN, tmp_path_factory.mktemp(name))
        return [QemuBackend(board).run(firmware, b"", timeout=60) for _ in range(2)]
    return runs


@pytest.mark.parametrize("name", EMULATED)
def test_counts_convert_exactly_to_instructions(name, probe_runs):
    board = get_board(name)
    first, second = probe_runs(name)
    assert first.output == second.output  # deterministic, tick for tick
    report = parse_output(first.output)
    backend = QemuBackend(board)
    short, long = report.totals[0], report.totals[1]
    # The longer loop runs 2 x 2 x SPIN more instructions; the conversion rounds once.
    assert abs(backend.count(long - short) - 4 * SPIN) <= 1
    # The short one: 2 x SPIN, plus the call, the loop count and the counter read not calibrated away.
    assert 0 <= backend.count(short - report.calibration_ticks) - 2 * SPIN <= 8


@pytest.mark.parametrize("name", EMULATED)
def test_every_port_reports_a_hard_fault(name, probe_runs):
    run = probe_runs(name)[0]
    report = parse_output(run.output)
    assert run.exit_code == 3 and report.fault is not None and report.fault.startswith("hard fault at pc 0x")


def test_a_counter_too_slow_for_single_instructions_is_refused(tmp_path):
    text = get_board("mps2-an386").source.read_text().replace('counter_clock = "25 MHz"', 'counter_clock = "5 MHz"')
    path = tmp_path / "slow.toml"
    path.write_text(text.replace('name = "mps2-an386"', 'name = "slow"'))
    with pytest.raises(BoardError, match="counter_clock 5,000,000 Hz ticks less than once per instruction"):
        QemuBackend(get_board(str(path)))


# --- the firmware ports ----------------------------------------------------------------------

# The DSP extension's instructions (Armv7-M Architecture Reference Manual: those marked Armv7E-M).
DSP = re.compile(r"\t(smla[bt][bt]|smlal[bt][bt]|smlaw[bt]|smlal?dx?|smlsl?dx?|smml[as]r?|smmulr?|smuadx?|"
                 r"smul[bt][bt]|smulw[bt]|smusdx?|[su]sat16|[su]xta[bh]|[su]xtab16|[su]xtb16|pkh(bt|tb)|sel|"
                 r"usada?8|qd?(add|sub)|(s|q|sh|u|uq|uh)(add16|add8|asx|sax|sub16|sub8))(\.[nw])?\s")


def disassembly(elf: Path) -> str:
    return subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                          check=True).stdout


def test_cores_without_the_dsp_extension_get_no_dsp_instructions(tmp_path):
    """QEMU's mps2-an385 runs SMLAD although a real Cortex-M3 faults on it: only the build keeps
    DSP instructions out of the M3 and M0 firmware, so look at what it emitted."""
    snippet = tmp_path / "smlad.c"
    snippet.write_text("#include <arm_acle.h>\nint f(int a, int b, int c) { return __smlad(a, b, c); }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-O2", "-c", str(snippet), "-o",
                    str(tmp_path / "smlad.o")], check=True)
    assert DSP.search(disassembly(tmp_path / "smlad.o"))  # the detector knows a DSP instruction
    for name in ("mps2-an385", "microbit"):
        found = DSP.search(disassembly(build_firmware(get_board(name)).elf))
        assert found is None, f"{name}: {found and found.group(0)}"


@pytest.mark.parametrize("board_name", ["mps2-an386", "mps2-an385", "microbit"])
def test_each_core_takes_the_kernel_paths_that_cost_it_fewer_instructions(board_name, tmp_path):
    """The fast paths on a core with the DSP extension, the reference loops on the M3 and M0 (where
    the fast paths run in portable C): what collect measures is the cheaper of the two, and its
    arena holds only the scratch of the paths it takes."""
    board = get_board(board_name)
    generate_models(3, seed=23, out_dir=tmp_path, bounds=bounds_for(board=get_board("microbit")))
    models = sorted(tmp_path.glob("*.tflite"))
    firmware, backend = build_firmware(board), QemuBackend(board)
    runs = {fast: [measure(m, board, firmware, backend, repeats=1, fast=fast) for m in models]
            for fast in (None, True, False)}
    assert all(m.verified for measured in runs.values() for m in measured)
    totals = {fast: sum(m.count for m in measured) for fast, measured in runs.items()}
    takes_fast = board.core in DSP_CORES
    assert totals[None] == totals[takes_fast] < totals[not takes_fast]
    chosen = [compile_plan(read_tflite(m), fast=takes_fast) for m in models]
    assert [m.arena_bytes for m in runs[None]] == [plan.arena_size for plan in chosen]
    if not takes_fast:
        assert all(plan.scratch_bytes == 0 for plan in chosen)


def test_netduinoplus2_clock_set_up_gives_up_cleanly_and_runs_on(tmp_path):
    """QEMU maps no RCC model (an unimplemented-device placeholder), so the PLL never reports ready:
    the STM32F4 port says so in its first line and, as its board file allows, runs on the HSI."""
    board = get_board("netduinoplus2")
    rcc = [r for r in qemu_memory_map(board.qemu_machine) if r[0] <= 0x40023800 < r[1]]
    assert rcc and rcc[0][2] == -1000 and board.clock_setup_may_fail
    run = QemuBackend(board).run(build_firmware(board), b"", timeout=60)
    report = parse_output(run.output)
    assert run.output.startswith("@CLOCK ")
    assert (report.clock_hz, report.clock_failure) == (16_000_000, "PLLRDY")
    assert report.firmware_hash and report.error.startswith("1: no_valid_run_header")  # ran on: no plan given


def test_a_clock_set_up_failure_the_board_file_does_not_allow_stops_the_board(tmp_path, small_models):
    """The real-board path on the emulated STM32: without `clock_setup_may_fail` the failed set-up
    is an error, and the measurement is recorded as failed with the ready bit that never came."""
    text = get_board("netduinoplus2").source.read_text()
    path = tmp_path / "strict.toml"
    path.write_text(re.sub(r"clock_setup_may_fail = true.*\n", "", text).replace('"netduinoplus2"', '"strict"', 1))
    board = get_board(str(path))
    m = measure(small_models[0], board, build_firmware(board), QemuBackend(board), repeats=1)
    assert (m.status, m.reason) == ("failed", "board reported error 4: clock set-up failed: PLLRDY never came")


@pytest.mark.parametrize("name", EMULATED)
def test_a_run_image_within_the_flash_limit_fits_where_it_is_loaded(name):
    board = get_board(name)
    firmware = build_firmware(board)
    assert firmware.flash_used <= board.plan_address - board.flash.origin  # the firmware stays below the plan
    assert firmware.flash_limit - firmware.flash_used <= board.flash.end - board.plan_address


def test_a_board_without_a_firmware_family_or_with_an_unknown_one_is_refused(tmp_path):
    bare = tmp_path / "bare.toml"
    bare.write_text(re.sub(r"\[firmware\][^[]*", "", get_board("nucleo-f746zg").source.read_text())
                    .replace('"nucleo-f746zg"', '"bare"', 1))
    with pytest.raises(BoardError, match="bare: hwbench has no firmware support for this board yet"):
        build_firmware(get_board(str(bare)))
    path = tmp_path / "odd.toml"
    path.write_text(get_board("mps2-an386").source.read_text().replace('family = "mps2"', 'family = "mps9"'))
    with pytest.raises(BoardError, match="'mps9', but there is no mps9.c; the firmware has .*nrf51.*stm32f4"):
        build_firmware(get_board(str(path)))


# --- collecting on the boards ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_models(tmp_path_factory):
    """Six generated models within the smallest board's memory (the micro:bit's 16 KiB of RAM, by
    the generator's board bounds), so that every board runs them all."""
    out = tmp_path_factory.mktemp("small")
    generate_models(6, seed=14, out_dir=out, bounds=bounds_for(board=get_board("microbit")))
    return sorted(out.glob("*.tflite"))


@pytest.mark.parametrize("name", NEW)
def test_generated_models_run_bit_exact_and_deterministic(name, small_models, tmp_path):
    board = get_board(name)
    models = small_models  # within the micro:bit's bounds, so they fit every board
    first = {m.model: m for m in collect(board, models, ResultsDB(tmp_path / "a.db"), repeats=2, jobs=2)}
    assert all(m.status == "measured" and m.verified for m in first.values()), \
        [(m.model, m.status, m.reason) for m in first.values() if not m.verified]
    assert len(first) == len(models)
    for m in first.values():
        # A counter ticking a whole number of times per instruction counts repeats identically; otherwise
        # (microbit: 2.048) the tick phase at each repeat's start rounds its count by one instruction.
        whole = QemuBackend(board).ticks_per_instruction.is_integer()
        assert m.unit == "instructions" and max(m.totals) - min(m.totals) <= (0 if whole else 1)
    again = collect(board, models[:2], ResultsDB(tmp_path / "b.db"), repeats=2)  # the same runs, tick for tick
    for m in again:
        assert [l.count for l in m.layers] == [l.count for l in first[m.model].layers]


def test_netduinoplus2_counts_what_mps2_an386_counts_for_the_same_cortex_m4_code(small_models, tmp_path):
    """Both build the runtime for a Cortex-M4F with the same flags: the same instructions run, so
    the two boards' counters (TIM2 at one tick, TIMER0 at 3.2 ticks per instruction) must agree."""
    models = small_models[:4]
    counts = {}
    for name in ("netduinoplus2", "mps2-an386"):
        measured = collect(get_board(name), models, ResultsDB(tmp_path / f"{name}.db"), repeats=1, jobs=2)
        counts[name] = {m.model: [l.count for l in m.layers] for m in measured if m.verified}
    assert len(counts["netduinoplus2"]) == len(models) and counts["netduinoplus2"].keys() == counts["mps2-an386"].keys()
    for model, layers in counts["netduinoplus2"].items():
        assert all(abs(a - b) <= 1 for a, b in zip(layers, counts["mps2-an386"][model], strict=True)), model


# What fits the micro:bit's 16 KiB of RAM and 256 KiB of flash: of the MLPerf Tiny models only the
# streaming wake word model (6,656 B of activations); keyword spotting needs 16,000 B, anomaly
# detection's weights exceed the flash.
MICROBIT_FITS = {"sww"}


@pytest.mark.parametrize("board_name", NEW)
@pytest.mark.parametrize("model", MLPERF_TINY)
def test_mlperf_tiny_models_run_bit_exact_where_they_fit(board_name, model, mlperf_model):
    board = get_board(board_name)
    m = measure(mlperf_model(model), board, build_firmware(board), QemuBackend(board), repeats=1)
    if board_name == "microbit" and model not in MICROBIT_FITS:
        assert m.status == "skipped" and "fit" in m.reason, m.reason
        return
    assert (m.status, m.verified) == ("measured", True), m.reason
    assert m.count > m.macs and m.macs == MLPERF_TINY[model][1]
