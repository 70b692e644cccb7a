"""Benchmark firmware for a board: built with arm-none-eabi-gcc from the board file (the shared sources,
plus the board-support file of the firmware family it names) and cached by
the board's runtime hash (hwbench.runtime_hash: sources, flags, memory map, and the plan compiler
that lays out the model) and the compiler's version, so a rebuild happens only when one of them
changed. The build records the firmware's footprint: the arena its SRAM leaves, the flash it takes and,
of that, the runtime's code (what a model needs on the board beside its plan), and the sizes of the
runtime's decoded-table entries on the board's core (the image publishes them), with which the host
knows the exact memory a plan needs there."""

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
from hwbench.kernel_paths import fast_paths_for
from hwbench.runtime_hash import runtime_hash as board_runtime_hash
from firmware_runner.compiler.plan import blob_arena_size, blob_table_counts
from firmware_runner.runtime.host import cache_dir, compile_c, runtime_sources

FIRMWARE_DIR = Path(__file__).resolve().parent
SHARED_SOURCES = ("startup.c", "bench.c", "protocol.c")
STACK_SIZE = 8 * 1024  # the runtime's deepest stack is under 2 KiB on every core (the STACK line)
RUN_HEADER_SIZE = 16
CORE_FLAGS = {"cortex-m0": ("-mcpu=cortex-m0",), "cortex-m0plus": ("-mcpu=cortex-m0plus",),
              "cortex-m3": ("-mcpu=cortex-m3",), "cortex-m4": ("-mcpu=cortex-m4",), "cortex-m7": ("-mcpu=cortex-m7",),
              "cortex-m33": ("-mcpu=cortex-m33",), "cortex-m55": ("-mcpu=cortex-m55",)}
COMMON_FLAGS = ("-std=c99", "-O2", "-g", "-mthumb", "-Wall", "-Wextra", "-ffunction-sections", "-fdata-sections")
LINK_FLAGS = ("-nostartfiles", "-specs=nano.specs", "-Wl,--gc-sections")


@dataclass(frozen=True)
class Firmware:
    board: str
    elf: Path
    runtime_hash: str  # what the DB records: firmware, runtime and plan compiler, for this board
    run_address: int  # where the run header and plan go
    arena_capacity: int  # bytes of SRAM left for the runtime's memory: a plan's decoded table, then its arena
    flash_used: int  # bytes of flash the firmware image takes
    runtime_code: int  # of those, the runtime's (the image less the harness: start-up, loop, protocol, board support)
    flash_limit: int  # flash the run image must share with the firmware (within the board's and the limits')
    sram_limit: int
    sram_run_address: int  # the arena's start: where a run image goes when it fits there beside its arena
    clock_hz: int  # the clock and the settings (name -> value) the board must report running with
    settings: dict[str, int]
    decoded_op_size: int  # sizeof(hwb_decoded_op) and sizeof(hwb_tensor) on the board (HWB_TABLE_SIZE)
    tensor_size: int
    fast_paths: bool  # whether plans for this core take the kernels' fast paths (hwbench.kernel_paths)

    def table_size(self, blob: bytes) -> int:
        """The bytes of the table the runtime decodes a plan into on the board, before its arena."""
        ops, operands = blob_table_counts(blob)
        return _align16(ops * self.decoded_op_size + operands * self.tensor_size)

    def memory_size(self, blob: bytes) -> int:
        """The memory hwb_load needs for a plan on the board (HWB_MEMORY_SIZE): its table and arena."""
        return self.table_size(blob) + blob_arena_size(blob)

    @property
    def plan_room(self) -> int:
        """The largest plan the board can be given beside the firmware (collect's own check)."""
        return self.flash_limit - self.flash_used - RUN_HEADER_SIZE

    def run_fits_sram(self, image: bytes) -> bool:
        """Whether a run image (run header + plan) fits at the arena's start beside the memory its plan
        needs; the firmware looks there before the plan address (bench.c)."""
        used = _align16(len(image))  # the memory starts 16-byte aligned after it
        return used + self.memory_size(image[RUN_HEADER_SIZE:]) <= self.arena_capacity


def _align16(n: int) -> int:
    return -(-n // 16) * 16


def stack_size(sram: int) -> int:
    """The stack the firmware reserves: STACK_SIZE, or a quarter of a small SRAM (16 KiB on the
    micro:bit), so the arena keeps most of it."""
    return min(STACK_SIZE, sram // 4)


def board_flags(board: Board) -> tuple[str, ...]:
    if board.core not in CORE_FLAGS:
        raise BoardError(f"{board.name}: no compiler flags for core {board.core!r}")
    fpu = ("-mfloat-abi=soft",) if board.fpu == "none" else (f"-mfpu={board.fpu}", "-mfloat-abi=hard")
    return (*CORE_FLAGS[board.core], *fpu)


def board_support(board: Board) -> Path:
    """The board-support file of the firmware family the board file names."""
    families = sorted(path.stem for path in FIRMWARE_DIR.glob("*.c") if path.name not in SHARED_SOURCES)
    if board.firmware_family is None:
        raise BoardError(f"{board.name}: hwbench has no firmware support for this board yet (its board file "
                         f"names no [firmware] family; the firmware has {', '.join(families)})")
    if board.firmware_family not in families:
        raise BoardError(f"{board.name}: its board file names the firmware family '{board.firmware_family}', "
                         f"but there is no {board.firmware_family}.c; the firmware has {', '.join(families)}")
    return FIRMWARE_DIR / f"{board.firmware_family}.c"


def board_defines(board: Board) -> tuple[str, ...]:
    """What the board-support file needs from the board file; a setting the file leaves out is not
    defined, and the family's default applies."""
    options = board.firmware_options
    given = {"HSE_HZ": options.hse_hz, "HSE_BYPASS": int(options.hse_bypass) if options.hse_hz else None,
             **{name.upper(): value for name, value in options.requested().items()}}
    return (f"-DHWB_UART_BASE={board.uart.base:#x}u", f"-DHWB_UART_BAUD={board.uart.baud}u",
            f"-DHWB_CLOCK_HZ={board.clock_hz}u", f"-DHWB_EMULATED={int(board.emulated)}",
            f"-DHWB_CLOCK_SETUP_MAY_FAIL={int(board.clock_setup_may_fail)}",
            *(f"-DHWB_{name}={value}u" for name, value in given.items() if value is not None))


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
        sram_origin=hex(board.sram.origin), sram_length=hex(sram), stack_size=hex(stack_size(sram)))
    sources = [*(FIRMWARE_DIR / s for s in SHARED_SOURCES), board_support(board), *runtime_sources()]
    flags = (*COMMON_FLAGS, *board_flags(board), *board_defines(board), f"-DHWB_RUN_ADDRESS={board.plan_address:#x}u")
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
    flash_used = symbols["__flash_end"] - board.flash.origin
    harness = _code_bytes(elf, FIRMWARE_DIR)  # its sources and headers (stm32_board.h defines board.h)
    # The run image goes at the plan address: no further than the end of the emulated flash.
    flash_limit = min(flash, flash_used + board.flash.end - board.plan_address) if plan_in_flash else flash
    firmware = Firmware(board.name, elf, runtime_hash, board.plan_address,
                        symbols["__arena_end"] - symbols["__arena_start"], flash_used, flash_used - harness,
                        flash_limit, sram,
                        symbols["__arena_start"], board.clock_hz, board.firmware_options.requested(),
                        symbols["hwb_decoded_op_size"], symbols["hwb_tensor_size"], fast_paths_for(board))
    partial = meta.with_suffix(".partial")
    partial.write_text(json.dumps({**asdict(firmware), "elf": str(elf)}))
    partial.replace(meta)  # another process building the same firmware never reads half a file
    return firmware


def _compiler_version() -> str:
    return subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True).stdout.split("\n")[0]


def _symbols(elf: Path) -> dict[str, int]:
    listing = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in listing.splitlines()) if len(parts) == 3}


def _code_bytes(elf: Path, folder: Path) -> int:
    """Bytes of flash (code, constants, initial data) the functions and objects defined in `folder`'s
    files take, found through the debug information's source line of each symbol."""
    listing = subprocess.run(["arm-none-eabi-nm", "--print-size", "--line-numbers", "--defined-only", str(elf)],
                             capture_output=True, text=True, check=True).stdout
    sizes = {}  # by address: aliases (the same object under two names) count once
    for line in listing.splitlines():
        symbol, _, where = line.partition("\t")
        parts = symbol.split()
        if len(parts) == 4 and parts[2] in "TtRrDd" and Path(where.rpartition(":")[0]).parent == folder:
            sizes[parts[0]] = int(parts[1], 16)
    return sum(sizes.values())
