"""The ways of reaching a board, one module each, all behind one small interface: start the
firmware with a run image (run header + plan) in place, hand back what the board printed, and say
what its counter counts. The benchmark loop, protocol and results store above them are shared.

- `qemu`: emulated boards (QEMU with `-icount`, counts are instructions).
- A real-board backend (pyOCD to flash, pyserial to read) slots in beside it.

May import: the core (`hwbench`) and `firmware_runner.firmware` (the firmware image it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hwbench.boards import Board
from hwbench.errors import BoardError
from firmware_runner.firmware.build import Firmware


@dataclass(frozen=True)
class BoardRun:
    output: str  # everything the board printed, decoded leniently
    exit_code: int | None  # None when it had to be killed
    killed: str | None  # why it had to be killed, in words ("no answer within 20 s"), or None
    seconds: float


class Backend(Protocol):
    unit: str  # "instructions" or "cycles"

    def run(self, firmware: Firmware, image: bytes, timeout: float) -> BoardRun:
        """One run, from any thread; never longer than `timeout` seconds."""

    def stop(self) -> None:
        """End every run in progress now (from any thread) and refuse new ones."""

    def count(self, ticks: float) -> float:
        """Counter ticks -> the unit."""


def backend_for(board: Board) -> Backend:
    if board.emulated:
        from firmware_runner.backends.qemu import QemuBackend

        return QemuBackend(board)
    raise BoardError(f"{board.name} is a real board; collecting on real boards (pyOCD) is not built yet — "
                     f"use an emulated board such as mps2-an386, with --memory-of {board.name} for its limits")
