"""Emulated boards: QEMU runs with `-icount shift=7,sleep=off`, so every instruction takes 2**7 ns
of virtual time and the counter the firmware reads, ticking at the board file's `counter_clock`,
converts exactly to instructions. Each run is one QEMU process in its own process group
(`hwbench.processes`), killed on its timeout, past MAX_OUTPUT, on any exception and when the
collection stops."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hwbench.boards import Board
from hwbench.errors import BoardError, HwbenchError
from hwbench.processes import Processes
from firmware_runner.backends import BoardRun
from firmware_runner.firmware.build import Firmware

ICOUNT_SHIFT = 7
# What a run may print: far above any real report (a line per layer and repeat, the outputs in hex),
# low enough that a runaway firmware cannot fill the host's memory.
MAX_OUTPUT = 4 * 2 ** 20


class QemuBackend:
    unit = "instructions"

    def __init__(self, board: Board, max_output: int = MAX_OUTPUT):
        if not board.emulated or not board.qemu_machine:
            raise BoardError(f"{board.name} is not an emulated board")
        if not shutil.which("qemu-system-arm"):
            raise HwbenchError("qemu-system-arm is not installed: run `make setup` (it installs qemu-system-arm)")
        self.board = board
        # Counter ticks per instruction: the counter's ticks in 2**shift nanoseconds. Below one, a
        # tick would span several instructions and counts would no longer be exact.
        self.ticks_per_instruction = board.qemu_counter_hz * 2 ** ICOUNT_SHIFT / 1e9
        if self.ticks_per_instruction < 1:
            slowest = 1e9 / 2 ** ICOUNT_SHIFT / 1e6
            raise BoardError(f"{board.name}: counter_clock {board.qemu_counter_hz:,} Hz ticks less than once per "
                             f"instruction (each takes {2 ** ICOUNT_SHIFT} ns of QEMU's time); counts need at "
                             f"least {slowest:g} MHz")
        self.max_output = max_output  # bytes a run may print
        self.processes = Processes()

    def close(self) -> None:
        """Nothing is held between runs: each is its own QEMU process."""

    def count(self, ticks: float) -> float:
        return round(ticks / self.ticks_per_instruction)  # exact to within one instruction

    def command(self, firmware: Firmware, image: Path) -> list[str]:
        return ["qemu-system-arm", "-M", self.board.qemu_machine, "-display", "none", "-monitor", "none",
                "-serial", "stdio", "-semihosting", "-icount", f"shift={ICOUNT_SHIFT},sleep=off",
                "-kernel", str(firmware.elf), "-device", f"loader,file={image},addr={firmware.run_address:#x}"]

    def run(self, firmware: Firmware, image: bytes, timeout: float) -> BoardRun:
        with tempfile.TemporaryDirectory(prefix="hwbench-run-") as tmp:
            path = Path(tmp) / "run.bin"
            path.write_bytes(image)
            run = self.processes.run(self.command(firmware, path), timeout, self.max_output)
            return BoardRun(run.output.decode("ascii", errors="replace"), run.exit_code, run.killed, run.seconds)

    def stop(self) -> None:
        self.processes.stop()
