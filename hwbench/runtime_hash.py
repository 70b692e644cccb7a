"""The runtime hash: one short id for everything that decides the counts a board reports — the C
runtime and its kernels, the benchmark firmware and its build settings, the plan compiler, the kernel
paths it records, and the memory scheduler and arena planner that lay a model out — for one board's
core, FPU, memory map and what its board-support file is built with (firmware family, UART, clock,
and the clock and memory system settings of its [firmware] table: wait states, flash accelerator,
caches).

The firmware build stamps it into the image, `collect` records it with every measurement, a
latency model records the one it was fitted on, and `predict` compares the two. It is computed from
the source files alone, so knowing it needs neither a compiler nor an import of the compiler
packages (the core imports none of them: it only reads their files).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from hwbench.boards import Board

HASH_LENGTH = 16  # hex digits


def runtime_hash(board: Board, limits: Board | None = None) -> str:
    """The runtime hash of `board`'s firmware; `limits`: a board whose SRAM and flash sizes the
    firmware is linked within (an emulated board standing in for a real one)."""
    limits = limits or board
    build = (board.core, board.fpu, board.flash.origin, min(board.flash.size, limits.flash.size),
             board.sram.origin, min(board.sram.size, limits.sram.size), board.plan_address, board.uart.base,
             board.uart.baud, board.clock_hz, board.emulated, board.firmware_family, board.clock_setup_may_fail,
             board.firmware_options)
    digest = hashlib.sha256(repr(build).encode())
    root = _package_root()
    for path in source_files():
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:HASH_LENGTH]


def source_files() -> list[Path]:
    """The files the hash covers, in a fixed order."""
    core = Path(__file__).resolve().parent
    firmware_runner = _package_root() / "firmware_runner"
    groups = [
        (firmware_runner / "runtime").rglob("*.[ch]"),
        (firmware_runner / "firmware").glob("*.[ch]"),
        (firmware_runner / "firmware").glob("*.ld.in"),
        [firmware_runner / "firmware" / "build.py"],  # compiler and linker flags
        (firmware_runner / "compiler").rglob("*.py"),
        (core / "memory").glob("*.py"),
        [core / "kernel_paths.py", core / "windows.py"],  # which kernel path each op takes, and its scratch
    ]
    return [path for group in groups for path in sorted(group)]


def _package_root() -> Path:
    """The folder holding the firmware_runner package (a clone's root, or site-packages), found
    without importing it."""
    spec = importlib.util.find_spec("firmware_runner")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("firmware_runner is not installed beside hwbench: reinstall hwbench")
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent
