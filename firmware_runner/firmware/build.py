"""Benchmark firmware for a board: built with arm-none-eabi-gcc from the board file and cached by
the board's runtime hash (hwbench.runtime_hash: sources, flags, memory map, and the plan compiler
that lays out the model) and the compiler's version, so a rebuild happens only when one of them
changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

from hwbench.boards import Board
from hwbench.errors import BoardError, HwbenchError
from hwbench.runtime_hash import runtime_hash as board_runtime_hash
from firmware_runner.runtime.host import cache_dir, compile_c, runtime_sources

FIRMWARE_DIR = Path(__file__).resolve().parent
SHARED_SOURCES = ("startup.c", "bench.c", "protocol.c")
BOARD_SUPPORT = {"mps2": "mps2.c"}  # board family (QEMU machine prefix) -> its one board file
STACK_SIZE = 8 * 1024
RUN_HEADER_SIZE = 16
CORE_FLAGS = {"cortex-m0plus": ("-mcpu=cortex-m0plus",), "cortex-m3": ("-mcpu=cortex-m3",),
              "cortex-m4": ("-mcpu=cortex-m4",), "cortex-m7": ("-mcpu=cortex-m7",),
              "cortex-m33": ("-mcpu=cortex-m33",), "cortex-m55": ("-mcpu=cortex-m55",)}
COMMON_FLAGS = ("-std=c99", "-O2", "-g", "-mthumb", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections")
LINK_FLAGS = ("-nostartfiles", "-specs=nano.specs", "-Wl,--gc-sections")


@dataclass(frozen=True)
class Firmware:
    board: str
    elf: Path
    runtime_hash: str  # what the DB records: firmware, runtime and plan compiler, for this board
    run_address: int  # where the run header and plan go
    arena_capacity: int  # bytes of SRAM left for the arena
    flash_used: int  # bytes of flash the firmware image takes
    flash_limit: int  # flash the plan must share with the firmware (the emulated board's limit)
    sram_limit: int


def board_flags(board: Board) -> tuple[str, ...]:
    if board.core not in CORE_FLAGS:
        raise BoardError(f"{board.name}: no compiler flags for core {board.core!r}")
    fpu = ("-mfloat-abi=soft",) if board.fpu == "none" else (f"-mfpu={board.fpu}", "-mfloat-abi=hard")
    return (*CORE_FLAGS[board.core], *fpu)


def board_support(board: Board) -> Path:
    family = (board.qemu_machine or "").split("-")[0]
    if family not in BOARD_SUPPORT:
        raise BoardError(f"{board.name}: hwbench has no firmware support for this board yet "
                         f"(it supports the emulated MPS2 boards)")
    return FIRMWARE_DIR / BOARD_SUPPORT[family]


def build_firmware(board: Board, limits: Board | None = None) -> Firmware:
    """The board's benchmark firmware (cached). `limits`: another board whose SRAM and flash sizes the
    firmware must live within (an emulated board standing in for a real one)."""
    limits = limits or board
    if not shutil.which("arm-none-eabi-gcc"):
        raise HwbenchError("arm-none-eabi-gcc is not installed: run `make setup` (it installs gcc-arm-none-eabi)")
    sram = min(board.sram.size, limits.sram.size)
    flash = min(board.flash.size, limits.flash.size)
    plan_in_flash = board.flash.origin <= board.plan_address < board.flash.end
    script = Template((FIRMWARE_DIR / "link.ld.in").read_text()).substitute(
        flash_origin=hex(board.flash.origin),
        flash_length=hex((board.plan_address - board.flash.origin) if plan_in_flash else flash),
        sram_origin=hex(board.sram.origin), sram_length=hex(sram), stack_size=hex(STACK_SIZE))
    sources = [*(FIRMWARE_DIR / s for s in SHARED_SOURCES), board_support(board), *runtime_sources()]
    flags = (*COMMON_FLAGS, *board_flags(board), f"-DHWB_UART_BASE={board.uart.base:#x}u",
             f"-DHWB_RUN_ADDRESS={board.plan_address:#x}u")
    runtime_hash = board_runtime_hash(board, limits)
    toolchain = hashlib.sha256(_compiler_version().encode()).hexdigest()[:8]
    folder = cache_dir() / "firmware" / f"{board.name}-{runtime_hash}-{toolchain}"
    meta = folder / "firmware.json"
    if meta.exists():
        data = json.loads(meta.read_text())
        return Firmware(**{**data, "elf": Path(data["elf"])})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "link.ld").write_text(script)
    elf = compile_c(folder / "firmware.elf", sources,
                    (*flags, f'-DHWB_FIRMWARE_HASH="{runtime_hash}"', "-I", str(FIRMWARE_DIR), *LINK_FLAGS,
                     "-T", str(folder / "link.ld")), cc="arm-none-eabi-gcc")
    symbols = _symbols(elf)
    firmware = Firmware(board.name, elf, runtime_hash, board.plan_address,
                        symbols["__arena_end"] - symbols["__arena_start"],
                        symbols["__flash_end"] - board.flash.origin, flash, sram)
    partial = meta.with_suffix(".partial")
    partial.write_text(json.dumps({**asdict(firmware), "elf": str(elf)}))
    partial.replace(meta)  # another process building the same firmware never reads half a file
    return firmware


def _compiler_version() -> str:
    return subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]


def _symbols(elf: Path) -> dict[str, int]:
    listing = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in listing.splitlines()) if len(parts) == 3}
