"""Real boards without a real board: every real board's firmware image built with the project's
toolchain and fitting its board; the clock and memory-system settings (board file -> build ->
the CLOCK line -> checked against the board file); pyOCD's own objects where they work without
hardware (discovery that finds none, target and pack look-up, memory maps); the CLI's real-board
commands; and the real-board backend end to end on the emulated STM32 — only pyOCD replaced by a
stand-in that loads QEMU as the probe would load the chip — read by pyserial on a real pty (QEMU's
UART relayed onto it with noise on the line), a silent board reset and read again, and a board that
stops answering."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import tty
import zlib
from pathlib import Path

import pytest

from hwbench.boards import get_board, list_boards
from hwbench.errors import BoardError, HwbenchError
from hwbench.runtime_hash import runtime_hash
from firmware_runner.backends import serial_port
from firmware_runner.backends.probe import connected_probes, target_problem
from firmware_runner.backends.real import RealBoardBackend, choose_probe, real_backend
from firmware_runner.collect import measure, run_image
from firmware_runner.compiler.plan import blob_arena_size, compile_plan
from firmware_runner.firmware.build import build_firmware
from firmware_runner.firmware.protocol import parse_output
from hwbench.generate import bounds_for, generate_models
from hwbench.tflite_reader import read_tflite
from test_cli import run

REAL = [board.name for board in list_boards() if not board.emulated]
NO_PROBE = "a debug probe is connected to this machine"


def probes_connected() -> bool:
    return bool(connected_probes())


# --- the firmware images -----------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_every_real_boards_firmware_builds_and_fits_its_board(name):
    board = get_board(name)
    firmware = build_firmware(board)
    print(f"{name}: {board.firmware_family}, image {firmware.flash_used:,} B of flash, arena {firmware.arena_capacity:,} B")
    assert 0 < firmware.flash_used <= board.plan_address - board.flash.origin  # below the reserved plan region
    assert firmware.arena_capacity >= board.sram.size // 2
    disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(firmware.elf)], capture_output=True, text=True,
                                 check=True).stdout
    assert "bkpt" not in disassembly  # no semihosting: without a debugger attached a BKPT faults


def test_clock_settings_are_part_of_the_runtime_hash_and_the_build(tmp_path):
    board = get_board("nucleo-f746zg")
    text = board.source.read_text().replace('"nucleo-f746zg"', '"f746-slow"', 1)
    slower = tmp_path / "slower.toml"
    slower.write_text(text.replace("wait_states = 7", "wait_states = 9").replace("dcache = true", "dcache = false"))
    other = get_board(str(slower))
    assert other.firmware_options.requested() == {"wait_states": 9, "art": 1, "icache": 1, "dcache": 0}
    assert runtime_hash(other) != runtime_hash(get_board(str(_renamed(tmp_path, text))))
    assert build_firmware(other).settings == other.firmware_options.requested()


def _renamed(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "same.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change, message", [
    (("wait_states = 7", "wait_states = 6"), "fewer flash wait states than the clock needs"),
    (('family = "stm32f7"', 'family = "stm32f4"'), "a Cortex-M4 has no L1 caches"),
])
def test_a_setting_the_port_cannot_honour_fails_the_build(tmp_path, change, message):
    path = tmp_path / "bad.toml"
    path.write_text(get_board("nucleo-f746zg").source.read_text().replace(*change).replace('"nucleo-f746zg"', '"bad"', 1))
    with pytest.raises(HwbenchError, match=message):
        build_firmware(get_board(str(path)))


@pytest.mark.parametrize("line, message", [
    ('hse_bypass = true\n', "give hse_clock too"),
    ('wait_states = 16\n', "wait states from 0 to 15"),
    ('dcache = "yes"\n', "expected true or false"),
])
def test_bad_clock_settings_are_refused_by_the_board_loader(tmp_path, line, message):
    text = re.sub(r"\[firmware\][^[]*", f'[firmware]\nfamily = "stm32f7"\n{line}\n', get_board("nucleo-f746zg")
                  .source.read_text()).replace('"nucleo-f746zg"', '"odd"', 1)
    path = tmp_path / "odd.toml"
    path.write_text(text)
    with pytest.raises(BoardError, match=message):
        get_board(str(path))


# --- the CLOCK line --------------------------------------------------------------------------


def frame(payload: str) -> str:
    return f"@{payload}#{zlib.crc32(payload.encode()):08x}\n"


def test_the_clock_line_and_its_settings_are_checked_against_the_board_file():
    wanted = {"wait_states": 7, "art": 1, "icache": 1, "dcache": 1}
    good = parse_output("boot noise\n" + frame("CLOCK 216000000 ok wait_states=7 art=1 icache=1 dcache=1"))
    assert (good.clock_hz, good.clock_failure, good.settings) == (216_000_000, None, wanted)
    assert good.settings_problem(216_000_000, wanted) is None
    no_cache = parse_output(frame("CLOCK 216000000 ok wait_states=7 art=1 icache=1 dcache=0"))
    assert no_cache.settings_problem(216_000_000, wanted) == "board runs with dcache=0, its board file asks dcache=1"
    assert "board runs at 16,000,000 Hz" in parse_output(frame("CLOCK 16000000 ok")).settings_problem(216_000_000, {})
    assert "reported no clock settings" in parse_output(frame("HELLO 1 abc")).settings_problem(25_000_000, wanted)
    assert parse_output(frame("CLOCK 16000000 PLLRDY")).settings_problem(216_000_000, wanted) is None  # reported apart


# --- pyOCD's real objects, without hardware ---------------------------------------------------


def test_probe_discovery_finds_none_and_says_what_to_connect(tmp_path):
    if probes_connected():
        pytest.skip(NO_PROBE)
    assert connected_probes() == []
    board = get_board("nucleo-f746zg")
    for find in (lambda: choose_probe(board, None), lambda: real_backend(board)):
        with pytest.raises(HwbenchError, match="no debug probe found: connect nucleo-f746zg .*ST-LINK"):
            find()
    with pytest.raises(HwbenchError, match="no debug probe with unique ID 0669FF3 is connected"):
        choose_probe(board, "0669FF3")


@pytest.mark.parametrize("name", [n for n in REAL if get_board(n).pyocd_pack])
def test_a_target_without_its_device_pack_names_the_exact_fix(name):
    board = get_board(name)
    problem = target_problem(board.pyocd_target, board.pyocd_pack)
    if problem is None:
        pytest.skip(f"the CMSIS pack for {board.pyocd_target} is installed here")
    assert f"`pyocd pack install {board.pyocd_target}`" in problem and board.pyocd_pack in problem


@pytest.mark.parametrize("name", [n for n in REAL if not get_board(n).pyocd_pack])
def test_built_in_targets_need_no_pack_and_keep_the_plan_region_on_its_own_sectors(name):
    """The run image is programmed at the plan address erasing whole sectors: by pyOCD's own memory
    map, the plan address starts a sector, so the firmware's sectors are never erased with it."""
    from pyocd.target import TARGET

    board = get_board(name)
    assert target_problem(board.pyocd_target, None) is None
    region = TARGET[board.pyocd_target].MEMORY_MAP.get_region_for_address(board.plan_address)
    assert region.is_flash and (board.plan_address - region.start) % region.sector_size == 0
    assert build_firmware(board).flash_used <= board.plan_address - board.flash.origin


PDSC = """<?xml version="1.0" encoding="UTF-8"?>
<package schemaVersion="1.4" xmlns:xs="http://www.w3.org/2001/XMLSchema-instance">
  <vendor>Test</vendor><name>STM32F7xx_DFP</name><description>test</description>
  <releases><release version="1.0.0">test</release></releases>
  <devices><family Dfamily="STM32F7 Series" Dvendor="STMicroelectronics:13">
    <processor Dcore="Cortex-M7" DcoreVersion="r0p1" Dfpu="SP_FPU" Dmpu="MPU" Dendian="Little-endian"/>
    <device Dname="STM32F746ZGTx">
      <memory id="IROM1" start="0x08000000" size="0x00100000" startup="1" default="1"/>
      <memory id="IRAM1" start="0x20000000" size="0x00050000" init="0" default="1"/>
    </device>
  </family></devices>
</package>
"""


def test_a_pack_file_given_with_pack_is_read_by_pyocd(tmp_path):
    import zipfile

    pack = tmp_path / "Test.STM32F7xx_DFP.1.0.0.pack"
    with zipfile.ZipFile(pack, "w") as archive:
        archive.writestr("Test.STM32F7xx_DFP.pdsc", PDSC)
    assert target_problem("stm32f746zgtx", "Keil.STM32F7xx_DFP", pack) is None
    assert target_problem("stm32l4r5zitx", None, pack) == f"{pack}: this CMSIS pack has no target 'stm32l4r5zitx'"
    assert "no such CMSIS pack file" in target_problem("stm32f746zgtx", None, tmp_path / "missing.pack")
    damaged = tmp_path / "damaged.pack"
    damaged.write_bytes(b"not a zip")
    assert "not a CMSIS pack pyOCD can read" in target_problem("stm32f746zgtx", None, damaged)


# --- the command line --------------------------------------------------------------------------


def test_collect_on_a_real_board_without_one_says_what_to_connect_before_generating(capsys, tmp_path, monkeypatch):
    if probes_connected():
        pytest.skip(NO_PROBE)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "collect", "--board", "nucleo-f746zg", "--count", "2")
    assert code == 1 and err.startswith("error: no debug probe found: connect nucleo-f746zg") and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no models generated, no database made


def test_probes_and_doctor_without_a_board(capsys):
    if probes_connected():
        pytest.skip(NO_PROBE)
    code, out, _ = run(capsys, "probes", "--json")
    assert code == 0 and out.strip() == "[]"
    code, out, _ = run(capsys, "probes")
    assert code == 0 and "no debug probe found: connect a board" in out
    code, out, err = run(capsys, "doctor", "--board", "nucleo-f746zg", "--json")
    checks = {c["name"]: c for c in json.loads(out)}
    assert code == 1 and "debug probe" in err
    assert not checks["debug probe"]["ok"] and checks["debug probe"]["needed"]
    assert checks["Arm toolchain (builds the firmware)"]["ok"]
    code, out, _ = run(capsys, "doctor", "--board", "mps2-an386")
    assert code == 0 and "QEMU" in out


# --- the real-board backend on the emulated STM32 ------------------------------------------------

NOISE = b"\x00\xff\x1b[2Jboot ROM 1.2 @CLOCK 9 ok#00000000\r\n"  # garbage and a frame with a wrong checksum


class Line:
    """The host's end of a serial line that outlives the board's resets, as a probe's VCP does: a pty
    pair whose slave pyserial opens. A relay copies each line QEMU's UART prints onto it, with noise
    before every line; `freeze` stops the board (SIGSTOP) after its first line and drops whatever it
    had printed beyond it. QEMU's UART reaches the relay through a socket QEMU waits on: QEMU's own
    `-serial pty` drops output until a timer notices the reader (once a second in QEMU 7.2) and lost
    bytes in trials here."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.relays: list[threading.Thread] = []

    def relay(self, uart: Path, process: subprocess.Popen, freeze: bool) -> None:
        source = socket.socket(socket.AF_UNIX)
        for _ in range(200):  # QEMU makes the socket as it starts
            try:
                source.connect(str(uart))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.05)
        self.relays.append(threading.Thread(target=self._copy, args=(source, process, freeze), daemon=True))
        self.relays[-1].start()

    def _copy(self, source: socket.socket, process: subprocess.Popen, freeze: bool) -> None:
        pending = b""
        try:
            while True:
                chunk = source.recv(4096)
                if not chunk:
                    return  # QEMU exited
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    os.write(self.master, NOISE + line + b"\n")
                    if freeze and line.startswith(b"@"):
                        os.kill(process.pid, signal.SIGSTOP)
                        return
        except OSError:
            return  # QEMU was killed
        finally:
            source.close()

    def close(self) -> None:
        """After the boards are gone: a relay still running would write to a closed, reused descriptor."""
        for relay in self.relays:
            relay.join(timeout=10)
        os.close(self.master)
        os.close(self.slave)


class QemuProbe:
    """Stands in for ProbeConnection on the emulated STM32: `program` and `write_memory` record what
    goes where, and `reset` starts QEMU afresh with all of it loaded, as a reset re-runs a real
    chip's flash and keeps its SRAM. The first `silent_resets` resets leave the board stopped."""

    def __init__(self, line: Line, folder: Path, silent_resets: int = 0, freeze: bool = False):
        self.line, self.folder, self.silent_resets, self.freeze = line, folder, silent_resets, freeze
        self.elf: Path | None = None
        self.memory: dict[int, bytes] = {}
        self.calls: list[tuple] = []
        self.process: subprocess.Popen | None = None

    def program(self, data, address=None) -> None:
        self.calls.append(("program", "elf" if address is None else address))
        if isinstance(data, Path):
            self.elf = data
        else:
            self.memory[address] = bytes(data)

    def write_memory(self, address: int, data: bytes) -> None:
        self.calls.append(("write", address, len(data)))
        self.memory[address] = bytes(data)

    def reset(self) -> None:
        self.calls.append(("reset",))
        self.close()
        uart = self.folder / "uart.sock"
        uart.unlink(missing_ok=True)
        loaders = []
        for address, data in self.memory.items():
            (self.folder / f"{address:08x}.bin").write_bytes(data)
            loaders += ["-device", f"loader,file={self.folder / f'{address:08x}.bin'},addr={address:#x}"]
        self.process = subprocess.Popen(
            ["qemu-system-arm", "-M", "netduinoplus2", "-display", "none", "-monitor", "none",
             "-chardev", f"socket,id=uart,path={uart},server=on,wait=on", "-serial", "chardev:uart", "-qmp", "stdio", "-S", "-semihosting", "-icount", "shift=7,sleep=off", "-kernel", str(self.elf),
             *loaders], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.line.relay(uart, self.process, self.freeze)  # connected before the board runs
        if self.silent_resets:
            self.silent_resets -= 1
            return  # left stopped: a board that does not answer
        self.process.stdin.write(b'{"execute": "qmp_capabilities"}\n{"execute": "cont"}\n')
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    generate_models(2, seed=31, out_dir=out, bounds=bounds_for(board=get_board("microbit")))
    return sorted(out.glob("*.tflite"))


@pytest.fixture
def emulated_stm32(monkeypatch, tmp_path):
    """The real-board backend on QEMU's netduinoplus2: the same STM32F4 firmware family, run image
    placement, serial reading and parsing; a first line is expected within 3 s (QEMU starts in
    about 50 ms; the margin is for a busy machine)."""
    monkeypatch.setattr(serial_port, "FIRST_LINE_SECONDS", 3.0)
    board = get_board("netduinoplus2")
    line = Line()
    probes = []

    def backend(**probe_options) -> tuple[RealBoardBackend, list[QemuProbe]]:
        def connect():
            folder = tmp_path / f"probe{len(probes)}"
            folder.mkdir()
            probes.append(QemuProbe(line, folder, **probe_options))
            return probes[-1]
        return RealBoardBackend(board, "qemu", line.path, connect), probes

    yield board, backend
    for probe in probes:
        probe.close()
    line.close()


def test_the_real_board_path_runs_models_from_sram_and_from_flash_bit_exact(emulated_stm32, models):
    board, make = emulated_stm32
    backend, probes = make()
    firmware = build_firmware(board)
    small, other = models
    in_sram = measure(small, board, firmware, backend, repeats=2)
    # A capacity too small for the run image beside the plan's memory sends it to the plan address.
    memory = firmware.memory_size(compile_plan(read_tflite(other)).blob)
    in_flash = measure(other, board, dataclasses.replace(firmware, arena_capacity=memory + 16), backend, repeats=2)
    backend.close()
    for m in (in_sram, in_flash):
        assert (m.status, m.verified, m.unit) == ("measured", True, "cycles"), m.reason
    calls = probes[0].calls
    assert calls.count(("program", "elf")) == 1  # once per firmware hash
    first_image = len(run_image(compile_plan(read_tflite(small)).blob, 0, 2))
    assert calls[1:3] == [("write", firmware.sram_run_address, first_image), ("reset",)]
    # the flash image first (pyOCD's flash algorithm runs from SRAM), then the SRAM header cleared
    flash_run = calls[calls.index(("program", firmware.run_address)):]
    assert flash_run[:3] == [("program", firmware.run_address), ("write", firmware.sram_run_address, 4), ("reset",)]


def test_the_firmware_takes_the_run_image_from_sram_with_the_arena_after_it(emulated_stm32, models):
    board, make = emulated_stm32
    backend, _ = make()
    firmware = build_firmware(board)
    image = run_image(compile_plan(read_tflite(models[0])).blob, 1, 1)
    assert firmware.run_fits_sram(image)
    report = parse_output(backend.run(firmware, image, timeout=30).output)
    backend.close()
    assert report.done and report.damaged >= 1  # the noise's bad frames, counted and ignored
    assert report.arena_capacity == firmware.arena_capacity - -(-len(image) // 16) * 16
    assert not firmware.run_fits_sram(image + bytes(firmware.arena_capacity))


def test_the_host_knows_to_16_bytes_the_memory_the_boards_runtime_needs_for_a_plan(emulated_stm32, models):
    """The runtime decodes a plan into a table (entries the size of the board's structs) before the
    arena. A plan padded so that the SRAM left after its run image is the memory the host computes
    runs; 16 bytes less (the memory's alignment) and the board's runtime refuses it."""
    board, make = emulated_stm32
    backend, _ = make()
    firmware = build_firmware(board)
    blob = compile_plan(read_tflite(models[0])).blob
    left = -(-firmware.memory_size(blob) // 16) * 16
    assert left > -(-blob_arena_size(blob) // 16) * 16  # the table takes room of its own

    def leaving(room: int) -> bytes:  # a run image after which the firmware finds `room` bytes
        plan_size = firmware.arena_capacity - room - 16  # the run header and plan end 16-byte aligned
        return run_image(blob + bytes(plan_size - len(blob)), 1, 1)

    fits, refused = leaving(left), leaving(left - 16)
    assert firmware.run_fits_sram(fits) and not firmware.run_fits_sram(refused)
    ran = parse_output(backend.run(firmware, fits, timeout=30).output)
    # The host told the image fits beside an arena 16 bytes larger: the board checks for itself.
    forced = dataclasses.replace(firmware, arena_capacity=firmware.arena_capacity + 16)
    assert forced.run_fits_sram(refused)
    refusal = parse_output(backend.run(forced, refused, timeout=30).output)
    backend.close()
    assert ran.done and ran.arena_capacity == left, ran.last_line
    assert not refusal.done and refusal.error.endswith(": arena"), refusal.last_line


def test_a_silent_board_is_reset_and_read_again(emulated_stm32, models):
    board, make = emulated_stm32
    backend, probes = make(silent_resets=1)
    m = measure(models[0], board, build_firmware(board), backend, repeats=1)
    backend.close()
    assert (m.status, m.verified) == ("measured", True), m.reason
    assert probes[0].calls.count(("reset",)) == 2


@pytest.mark.parametrize("options, reason", [
    (dict(silent_resets=2), r"board silent: no protocol line on \S+ within 3 s of a reset, twice \(last line: "),
    (dict(freeze=True), r"board stopped answering: not finished within 4 s, twice \(last line: '.*@CLOCK "),
])
def test_a_board_that_does_not_answer_is_recorded_failed_with_the_reason(emulated_stm32, models, options, reason):
    board, make = emulated_stm32
    backend, probes = make(**options)
    m = measure(models[0], board, build_firmware(board), backend, repeats=1, timeout=4)
    backend.close()
    assert m.status == "failed" and re.match(reason, m.reason), m.reason
    assert probes[0].calls.count(("reset",)) == 2
