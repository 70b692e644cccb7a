"""The board registry: one TOML file per board, and the loader that validates it.

A board file says what hwbench needs to build firmware for a board, run it, and compare its
numbers with other boards. A user adds a board by writing one such file and passing its path
wherever a board name is accepted (``get_board("my-board.toml")``).

Format (every field is required unless marked optional)::

    # lower-case letters, digits, '-', '_', '.'; bundled boards: the file's stem
    name        = "nucleo-f746zg"
    description = "ST NUCLEO-F746ZG: STM32F746ZG, ST-LINK/V2-1 virtual COM port on USART3"
    # true: runs in QEMU; false: a physical board reached through pyOCD
    emulated    = false
    # cortex-m0, cortex-m0plus, cortex-m3, cortex-m4, cortex-m7, cortex-m33, cortex-m55
    core        = "cortex-m7"
    # none, fpv4-sp-d16, fpv5-sp-d16 or fpv5-d16 (the gcc -mfpu value), as the core allows
    fpu         = "fpv5-sp-d16"
    # integer Hz, or "N Hz" / "N kHz" / "N MHz" / "N GHz", between 1 MHz and 2 GHz
    clock       = "216 MHz"
    # "cycles" (DWT->CYCCNT) on real boards, "instructions" on emulated ones
    counter     = "cycles"

    [flash]                         # where the firmware (and usually the plan) lives
    origin = 0x08000000             # addresses are integers (TOML allows 0x...)
    size   = "1 MiB"                # integer bytes, or "N B" / "N KiB" / "N MiB" (1024-based)

    [sram]                          # where the arena, stack and buffers live
    origin = 0x20000000
    size   = "320 KiB"

    [plan]
    address = 0x08080000            # where the host places the binary plan; inside flash or SRAM

    [uart]                          # the port the firmware prints results on
    peripheral = "USART3"
    base       = 0x40004800
    baud       = 115200

    [firmware]                      # optional: boards the benchmark firmware supports
    family = "stm32f7"              # its board-support file, firmware_runner/firmware/<family>.c
    clock_setup_may_fail = false    # optional, emulated boards only: true where the emulator
                                    # lacks the clock tree (the firmware then says so and runs on)
    # Optional settings of the chip's clock and memory system (absent: the family's default, see
    # its .c file). They change what a board counts, so they are part of the runtime hash; the
    # firmware reports the ones in effect, and a board running other settings is a failed run.
    hse_clock   = "8 MHz"           # the external clock the PLL runs from (absent: internal)
    hse_bypass  = true              # that clock is a signal (the ST-LINK's MCO), not a crystal
    wait_states = 7                 # flash wait states (absent: the fewest the clock allows)
    art         = true              # the flash accelerator (STM32: ART, prefetch, flash caches)
    icache      = true              # instruction cache (Cortex-M7 L1; nRF52: the NVMC cache)
    dcache      = true              # data cache (Cortex-M7 L1)

    [qemu]                          # emulated boards only
    machine = "mps2-an386"          # the qemu-system-arm -M value
    counter_clock = "25 MHz"        # the rate the firmware's counter ticks at in QEMU's virtual
                                    # time (each instruction takes 2**shift ns under -icount)

    [pyocd]                         # real boards only
    target = "stm32f746zgtx"        # the pyOCD target type
    pack   = "Keil.STM32F7xx_DFP"   # optional: the CMSIS device pack pyOCD needs for that target

Every problem found while loading raises one :class:`~hwbench.errors.BoardError` whose message
names the file and the field, and says what was expected.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Callable, NoReturn

from hwbench.errors import BoardError

__all__ = [
    "Board",
    "MemoryRegion",
    "Uart",
    "FirmwareOptions",
    "load_board_file",
    "get_board",
    "list_boards",
    "board_summary",
    "parse_size",
    "parse_clock",
    "BOARD_DIR",
    "CORES",
    "DSP_CORES",
    "FPUS",
]

# The bundled board files: the repository's top-level boards/ folder, reached through the
# hwbench/board_files link in a clone and shipped there as package data in a wheel.
BOARD_DIR = (Path(__file__).parent / "board_files").resolve()

# Each core and the FPUs it can have; the FPU names are passed straight to gcc -mfpu.
CORE_FPUS: dict[str, tuple[str, ...]] = {
    "cortex-m0": ("none",),
    "cortex-m0plus": ("none",),
    "cortex-m3": ("none",),
    "cortex-m4": ("none", "fpv4-sp-d16"),
    "cortex-m7": ("none", "fpv5-sp-d16", "fpv5-d16"),
    "cortex-m33": ("none", "fpv5-sp-d16"),
    "cortex-m55": ("none", "fpv5-d16"),
}
CORES = tuple(CORE_FPUS)
# The cores with the DSP extension (SIMD multiply-accumulates: SMLAD, SXTB16), which the runtime's
# fast kernel paths are written for (hwbench.kernel_paths).
DSP_CORES = frozenset({"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"})
FPUS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")

# Anything outside this range is a unit mistake, not a Cortex-M clock.
MIN_CLOCK_HZ = 1_000_000
MAX_CLOCK_HZ = 2_000_000_000

# Below this many bytes between the plan address and the end of its region not even a tiny
# model's plan fits; such an address is a typo.
MIN_PLAN_ROOM = 4 * 1024


@dataclasses.dataclass(frozen=True)
class MemoryRegion:
    origin: int
    size: int

    @property
    def end(self) -> int:
        """The first address past the region."""
        return self.origin + self.size

    def __contains__(self, address: int) -> bool:
        return self.origin <= address < self.end


@dataclasses.dataclass(frozen=True)
class Uart:
    peripheral: str
    base: int
    baud: int


@dataclasses.dataclass(frozen=True)
class FirmwareOptions:
    """How the firmware sets the chip's clock and memory system up; None: the family's default."""
    hse_hz: int | None = None
    hse_bypass: bool = False
    wait_states: int | None = None
    art: bool | None = None
    icache: bool | None = None
    dcache: bool | None = None

    def requested(self) -> dict[str, int]:
        """The settings the firmware reports in effect (its CLOCK line), as the board file asks them."""
        values = {"wait_states": self.wait_states, "art": self.art, "icache": self.icache, "dcache": self.dcache}
        return {name: int(value) for name, value in values.items() if value is not None}


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    description: str
    emulated: bool
    core: str
    fpu: str
    clock_hz: int
    counter: str  # "cycles" or "instructions": the unit every measurement on this board is in
    flash: MemoryRegion
    sram: MemoryRegion
    plan_address: int
    uart: Uart
    firmware_family: str | None  # the board-support file the firmware is built with; None: no port yet
    clock_setup_may_fail: bool  # the emulator lacks the clock tree: a failed clock set-up is expected
    firmware_options: FirmwareOptions
    qemu_machine: str | None
    qemu_counter_hz: int | None  # the firmware counter's ticks per second of QEMU's virtual time
    pyocd_target: str | None
    pyocd_pack: str | None
    source: Path  # the file the board was loaded from


# --- public API -----------------------------------------------------------------------------


def get_board(name_or_path: str | Path) -> Board:
    """A bundled board by name ("nucleo-f746zg"), or the user's own board file by path."""
    text = str(name_or_path)
    bundled = BOARD_DIR / f"{text}.toml"
    if _looks_like_name(text) and bundled.is_file():
        return load_board_file(bundled)
    if not _looks_like_name(text) or Path(text).is_file():
        return load_board_file(Path(text))
    known = ", ".join(board.name for board in list_boards())
    raise BoardError(
        f"unknown board '{text}': known boards are {known}; "
        f"for your own board, give the path to its .toml file"
    )


def list_boards() -> list[Board]:
    """The bundled boards, sorted by name."""
    return sorted((load_board_file(p) for p in BOARD_DIR.glob("*.toml")), key=lambda b: b.name)


def board_summary(board: Board) -> dict:
    """A board as plain JSON-able fields (what `hwbench boards --json` prints)."""
    fields = dataclasses.asdict(board)
    return {**fields, "kind": "emulated" if board.emulated else "real", "source": str(board.source)}


def load_board_file(path: str | Path) -> Board:
    """Read and validate one board file; any problem raises BoardError naming file and field."""
    path = Path(path)
    fields = _Fields(_display_name(path), _read_toml(path))
    board = fields.board(source=path)
    if _is_bundled(path) and board.name != path.stem:
        fields.fail("name", f"'{board.name}' must match the file name '{path.stem}'")
    return board


def parse_size(value: Any) -> int:
    """Bytes from an integer or a string like "320 KiB"; raises ValueError saying what is wrong."""
    expected = "expected a size like 320 KiB or an integer number of bytes"
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]+)\s*", value)
        if not match:
            raise ValueError(f"{expected}, got {value!r} (write a whole number and a unit)")
        number, unit = int(match[1]), match[2]
        if unit not in _SIZE_UNITS:
            # "KB" is 1000 or 1024 depending on who wrote it; the binary units are unambiguous.
            raise ValueError(f"{expected}, got {value!r} (use B, KiB or MiB, 1024-based)")
        size = number * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"{expected}, got {_describe(value)}")
    if size <= 0:
        raise ValueError(f"a size must be positive, got {value!r}")
    return size


def parse_clock(value: Any) -> int:
    """Hz from an integer or a string like "216 MHz"; raises ValueError saying what is wrong."""
    expected = 'expected a frequency like "216 MHz" or an integer number of Hz'
    if isinstance(value, int) and not isinstance(value, bool):
        hz = value
        if 1 <= hz < MIN_CLOCK_HZ:
            raise ValueError(
                f"{hz} Hz is far too slow for a Cortex-M; integers are Hz: "
                f'did you mean "{hz} MHz"?'
            )
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", value)
        if not match or match[2] not in _CLOCK_UNITS:
            raise ValueError(f"{expected}, got {value!r} (units: Hz, kHz, MHz, GHz)")
        exact = float(match[1]) * _CLOCK_UNITS[match[2]]
        hz = round(exact)
        if abs(exact - hz) > 1e-6 * max(hz, 1):
            raise ValueError(f"{value!r} is not a whole number of Hz")
    else:
        raise ValueError(f"{expected}, got {_describe(value)}")
    if not MIN_CLOCK_HZ <= hz <= MAX_CLOCK_HZ:
        raise ValueError(f"{value!r} is outside the plausible range 1 MHz .. 2 GHz for a Cortex-M")
    return hz


# --- reading and checking ------------------------------------------------------------------

_SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 * 1024}
_CLOCK_UNITS = {"Hz": 1, "kHz": 1_000, "MHz": 1_000_000, "GHz": 1_000_000_000}

# The allowed keys at each level; None marks a value, a dict a table. "?" marks optional ones.
_SCHEMA: dict[str, Any] = {
    "name": None,
    "description": None,
    "emulated": None,
    "core": None,
    "fpu": None,
    "clock": None,
    "counter": None,
    "flash": {"origin": None, "size": None},
    "sram": {"origin": None, "size": None},
    "plan": {"address": None},
    "uart": {"peripheral": None, "base": None, "baud": None},
    "firmware?": {"family": None, "clock_setup_may_fail?": None, "hse_clock?": None, "hse_bypass?": None,
                  "wait_states?": None, "art?": None, "icache?": None, "dcache?": None},
    "qemu?": {"machine": None, "counter_clock": None},
    "pyocd?": {"target": None, "pack?": None},
}

_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _read_toml(path: Path) -> dict[str, Any]:
    shown = _display_name(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BoardError(f"{shown}: cannot read the board file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoardError(
            f"{shown}: not a text TOML board file (invalid UTF-8 at byte {exc.start})"
        ) from None
    if not text.strip():
        raise BoardError(
            f"{shown}: the file is empty; a board file needs the fields "
            + ", ".join(key for key in _SCHEMA if not key.endswith("?"))
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"{shown}: not valid TOML: {exc}") from None


class _Fields:
    """Takes typed fields out of one parsed board file, raising BoardError on the first problem."""

    def __init__(self, shown: str, data: dict[str, Any]):
        self.shown = shown
        self.data = data
        self._check_keys(data, _SCHEMA, "")

    def fail(self, field: str, problem: str) -> NoReturn:
        raise BoardError(f"{self.shown}: field '{field}': {problem}")

    def board(self, source: Path) -> Board:
        name = self.get("name", _name)
        emulated = self.get("emulated", _boolean)
        core = self.get("core", _choice(CORES))
        fpu = self.get("fpu", _choice(FPUS))
        if fpu not in CORE_FPUS[core]:
            self.fail("fpu", f"a {core} has no {fpu} FPU; use one of {', '.join(CORE_FPUS[core])}")
        flash, sram = self.region("flash"), self.region("sram")
        if flash.origin < sram.end and sram.origin < flash.end:
            self.fail("sram", "overlaps flash; check both origins and sizes")
        qemu_machine, qemu_counter_hz, pyocd_target, pyocd_pack = self.reach(emulated)
        return Board(
            name=name,
            description=self.get("description", _text),
            emulated=emulated,
            core=core,
            fpu=fpu,
            clock_hz=self.get("clock", parse_clock),
            counter=self.counter(emulated),
            flash=flash,
            sram=sram,
            plan_address=self.plan_address(flash, sram),
            uart=Uart(
                peripheral=self.get("uart.peripheral", _text),
                base=self.get("uart.base", _address),
                baud=self.get("uart.baud", _positive_int),
            ),
            firmware_family=self.get("firmware.family", _name, required=False),
            clock_setup_may_fail=self.clock_setup_may_fail(emulated),
            firmware_options=self.firmware_options(),
            qemu_machine=qemu_machine,
            qemu_counter_hz=qemu_counter_hz,
            pyocd_target=pyocd_target,
            pyocd_pack=pyocd_pack,
            source=source,
        )

    def get(self, field: str, convert: Callable[[Any], Any], required: bool = True) -> Any:
        """The converted value of a dotted field ("sram.size"); None if optional and absent."""
        *tables, key = field.split(".")
        table = self.data
        for depth, name in enumerate(tables, start=1):
            if name not in table and required:
                missing = ".".join(tables[:depth])
                raise BoardError(f"{self.shown}: missing table [{missing}] (field '{field}')")
            table = table.get(name, {})
        if key not in table:
            if not required:
                return None
            raise BoardError(f"{self.shown}: missing required field '{field}'")
        try:
            return convert(table[key])
        except ValueError as exc:
            self.fail(field, str(exc))

    def region(self, table: str) -> MemoryRegion:
        origin = self.get(f"{table}.origin", _address)
        region = MemoryRegion(origin, self.get(f"{table}.size", parse_size))
        if region.end > 2**32:
            self.fail(f"{table}.size", f"{table} would end past the 4 GiB address space")
        return region

    def counter(self, emulated: bool) -> str:
        counter = self.get("counter", _choice(("cycles", "instructions")))
        # QEMU models no pipeline or caches and its DWT->CYCCNT reads 0: it can count only
        # instructions; a real board counts cycles. Mixing the two units would corrupt results.
        expected = "instructions" if emulated else "cycles"
        if counter != expected:
            why = "an emulated board (QEMU cannot count cycles)" if emulated else "a real board"
            self.fail("counter", f"must be '{expected}' on {why}, got '{counter}'")
        return counter

    def plan_address(self, flash: MemoryRegion, sram: MemoryRegion) -> int:
        address = self.get("plan.address", _address)
        regions = {"flash": flash, "SRAM": sram}
        inside = next((name for name, region in regions.items() if address in region), None)
        if inside is None:
            self.fail(
                "plan.address",
                f"{address:#010x} is outside flash ({flash.origin:#010x}..{flash.end:#010x}) "
                f"and SRAM ({sram.origin:#010x}..{sram.end:#010x})",
            )
        if address == flash.origin:
            self.fail("plan.address", "the firmware starts at the flash origin; move the plan up")
        if address % 4:
            self.fail("plan.address", f"{address:#010x} is not 4-byte aligned (plans hold words)")
        if regions[inside].end - address < MIN_PLAN_ROOM:
            room = f"less than {MIN_PLAN_ROOM} bytes for the plan before the end of {inside}"
            self.fail("plan.address", f"{address:#010x} leaves {room}")
        return address

    def clock_setup_may_fail(self, emulated: bool) -> bool:
        may_fail = self.get("firmware.clock_setup_may_fail", _boolean, required=False) or False
        if may_fail and not emulated:
            self.fail("firmware.clock_setup_may_fail", "only an emulator may lack the clock tree; "
                      "a real board whose clock set-up fails is broken")
        return may_fail

    def firmware_options(self) -> FirmwareOptions:
        hse_hz = self.get("firmware.hse_clock", parse_clock, required=False)
        bypass = self.get("firmware.hse_bypass", _boolean, required=False)
        if bypass is not None and hse_hz is None:
            self.fail("firmware.hse_bypass", "says how the HSE clock comes in: give hse_clock too")
        flag = lambda name: self.get(f"firmware.{name}", _boolean, required=False)  # noqa: E731
        return FirmwareOptions(hse_hz=hse_hz, hse_bypass=bool(bypass),
                               wait_states=self.get("firmware.wait_states", _wait_states, required=False),
                               art=flag("art"), icache=flag("icache"), dcache=flag("dcache"))

    def reach(self, emulated: bool) -> tuple[str | None, int | None, str | None, str | None]:
        """How hwbench reaches the board: (qemu machine, its counter's Hz, pyocd target, pyocd pack)."""
        wanted, unwanted = ("qemu", "pyocd") if emulated else ("pyocd", "qemu")
        kind = "emulated" if emulated else "real"
        if unwanted in self.data:
            self.fail(unwanted, f"a {kind} board is reached through {wanted}; remove [{unwanted}]")
        if wanted not in self.data:
            example = 'machine = "mps2-an386"' if emulated else 'target = "stm32f746zgtx"'
            raise BoardError(
                f"{self.shown}: missing table [{wanted}] ({example}): every {kind} board needs it"
            )
        if emulated:
            return self.get("qemu.machine", _text), self.get("qemu.counter_clock", parse_clock), None, None
        return None, None, self.get("pyocd.target", _text), self.get("pyocd.pack", _text, required=False)

    def _check_keys(self, table: dict[str, Any], schema: dict[str, Any], prefix: str) -> None:
        """Rejects unknown keys at every level, so a typo is not silently ignored."""
        allowed = {key.rstrip("?"): sub for key, sub in schema.items()}
        for key, value in table.items():
            field = prefix + key
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.7)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                where = f"in [{prefix[:-1]}]" if prefix else "at the top level"
                raise BoardError(
                    f"{self.shown}: unknown field '{field}'{hint}; "
                    f"allowed {where}: {', '.join(allowed)}"
                )
            sub = allowed[key]
            if sub is not None and not isinstance(value, dict):
                keys = ", ".join(k.rstrip("?") for k in sub)
                self.fail(field, f"expected a table [{field}] with {keys}")
            if sub is None and isinstance(value, dict):
                self.fail(field, "expected a value, got a table")
            if sub is not None:
                self._check_keys(value, sub, field + ".")


# --- value converters: each raises ValueError with what was expected ----------------------


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{value!r} ({kind.get(type(value), type(value).__name__)})"


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {_describe(value)}")
    return value


def _name(value: Any) -> str:
    text = _text(value)
    if not _NAME_PATTERN.fullmatch(text):
        raise ValueError(
            f"{text!r} is not a board name: use lower-case letters, digits, '-', '_' and '.'"
        )
    return text


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive integer, got {_describe(value)}")
    return value


def _wait_states(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 15:
        raise ValueError(f"expected flash wait states from 0 to 15, got {_describe(value)}")
    return value


def _address(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer address like 0x20000000, got {_describe(value)}")
    if not 0 <= value < 2**32:
        raise ValueError(f"{value:#x} is not a 32-bit address")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {_describe(value)}")
        return value

    return convert


# --- names and paths -----------------------------------------------------------------------


def _looks_like_name(text: str) -> bool:
    """A bare board name, as opposed to a path to a file."""
    return "/" not in text and "\\" not in text and not text.endswith(".toml")


def _is_bundled(path: Path) -> bool:
    return path.resolve().parent == BOARD_DIR


def _display_name(path: Path) -> str:
    """How a file is named in messages: bundled ones relative to the project, others as given."""
    return f"boards/{path.name}" if _is_bundled(path) else str(path)
