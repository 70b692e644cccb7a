"""The ways of reaching a board, one module each, all behind one small interface: start the
firmware with a run image (run header + plan) in place, hand back what the board printed, and say
what its counter counts. The benchmark loop, protocol and results store above them are shared.

- `qemu`: emulated boards (QEMU with `-icount`, counts are instructions).
- `real`: real boards (counts are cycles), from three parts: `probe` (pyOCD, the only module that
  talks to it: find, connect, program, write memory, reset, close), `serial_port` (pyserial: find the
  board's port, read a run, reset and retry a silent board) and `stream` (read the protocol from a
  live byte stream with a time limit, for any backend that reads a board while it runs).

May import: the core (`hwbench`) and `firmware_runner.firmware` (the firmware image it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hwbench.boards import Board
from firmware_runner.firmware.build import Firmware


@dataclass(frozen=True)
class BoardRun:
    output: str  # everything the board printed, decoded leniently
    exit_code: int | None  # None when it had to be killed
    killed: str | None  # why it had to be killed, in words ("no answer within 20 s"), or None
    seconds: float
    problem: str | None = None  # why the run cannot be used, when the backend knows better than its output


class Backend(Protocol):
    unit: str  # "instructions" or "cycles"

    def run(self, firmware: Firmware, image: bytes, timeout: float) -> BoardRun:
        """One run, from any thread; never longer than `timeout` seconds."""

    def stop(self) -> None:
        """End every run in progress now (from any thread) and refuse new ones."""

    def close(self) -> None:
        """Let go of what the backend holds between runs (a probe connection, a serial port)."""

    def count(self, ticks: float) -> float:
        """Counter ticks -> the unit."""


def backend_for(board: Board, probe: str | None = None, port: str | None = None, pack: Path | None = None) -> Backend:
    """How to reach `board`. For a real board: the debug probe with unique ID `probe` (default: the only
    one connected), its serial port (default: the probe's own virtual COM port) and a CMSIS pack file
    for pyOCD; the probe, the port and pyOCD's target are looked up now, so a missing piece is an
    error before anything is generated or built."""
    if board.emulated:
        from firmware_runner.backends.qemu import QemuBackend

        return QemuBackend(board)
    from firmware_runner.backends.real import real_backend

    return real_backend(board, probe=probe, port=port, pack=pack)
