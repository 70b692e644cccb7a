"""The board registry: bundled boards load with datasheet figures, users' own files load by
path, and every kind of bad board file is refused with a message naming the file and field."""

from pathlib import Path

import pytest

from hwbench import boards
from hwbench.boards import Board, get_board, list_boards, load_board_file, parse_clock, parse_size
from hwbench.errors import BoardError, HwbenchError

KiB = 1024
MiB = 1024 * 1024
MHz = 1_000_000

BUNDLED = {
    "mps2-an385",
    "mps2-an386",
    "mps2-an500",
    "mps2-an505",
    "mps3-an547",
    "microbit",
    "netduinoplus2",
    "nucleo-f746zg",
    "nucleo-f767zi",
    "nucleo-l4r5zi",
    "nucleo-f411re",
    "disco-f746ng",
    "nrf52840dk",
}

# A valid board file for a user's own real board; the bad-input cases below each break it once.
USER_BOARD = """\
name = "my-board"
description = "a user's own board"
emulated = false
core = "cortex-m7"
fpu = "fpv5-sp-d16"
clock = "216 MHz"
counter = "cycles"

[flash]
origin = 0x08000000
size = "1 MiB"

[sram]
origin = 0x20000000
size = "320 KiB"

[plan]
address = 0x08080000

[uart]
peripheral = "USART3"
base = 0x40004800
baud = 115200

[pyocd]
target = "stm32f746zgtx"
pack = "Keil.STM32F7xx_DFP"
"""


def write(tmp_path: Path, text: str | bytes, name: str = "myboard.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def replaced(old: str, new: str) -> str:
    assert old in USER_BOARD, old  # guards the test itself against a stale edit
    return USER_BOARD.replace(old, new)


# --- bundled boards -------------------------------------------------------------------------


def test_list_boards_has_every_bundled_board_sorted_by_name():
    names = [board.name for board in list_boards()]
    assert set(names) == BUNDLED
    assert names == sorted(names)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_board_loads_with_sane_figures(name):
    board = get_board(name)
    assert isinstance(board, Board)
    assert board.name == name == board.source.stem
    assert board.description
    assert 1 * MHz <= board.clock_hz <= 500 * MHz
    assert 16 * KiB <= board.sram.size <= 16 * MiB
    assert 64 * KiB <= board.flash.size <= 16 * MiB
    assert board.flash.origin + board.flash.size <= 2**32
    assert board.flash.origin < board.plan_address < board.flash.origin + board.flash.size
    assert board.uart.baud > 0 and board.uart.base >= 0x40000000  # Cortex-M peripheral region
    if board.emulated:
        assert board.counter == "instructions"
        assert board.qemu_machine == name  # bundled emulated boards are named for QEMU's machine
        assert board.pyocd_target is None
    else:
        assert board.counter == "cycles"
        assert board.pyocd_target and board.qemu_machine is None
        # real boards keep the plan in the upper half of flash, clear of the firmware
        assert board.plan_address >= board.flash.origin + board.flash.size // 2


def test_board_is_frozen():
    board = get_board("nucleo-f746zg")
    with pytest.raises(AttributeError):
        board.clock_hz = 1  # type: ignore[misc]


def test_nucleo_f746zg_matches_its_datasheet():
    board = get_board("nucleo-f746zg")
    assert (board.core, board.fpu, board.emulated) == ("cortex-m7", "fpv5-sp-d16", False)
    assert board.clock_hz == 216 * MHz
    assert (board.flash.origin, board.flash.size) == (0x08000000, 1 * MiB)
    assert (board.sram.origin, board.sram.size) == (0x20000000, 320 * KiB)
    assert (board.uart.peripheral, board.uart.base) == ("USART3", 0x40004800)
    assert board.pyocd_target == "stm32f746zgtx" and board.pyocd_pack  # needs its device pack


def test_other_real_boards_match_their_datasheets():
    f767 = get_board("nucleo-f767zi")
    assert (f767.fpu, f767.flash.size, f767.sram.size) == ("fpv5-d16", 2 * MiB, 512 * KiB)
    l4r5 = get_board("nucleo-l4r5zi")
    assert (l4r5.core, l4r5.clock_hz, l4r5.sram.size) == ("cortex-m4", 120 * MHz, 640 * KiB)
    assert (l4r5.uart.peripheral, l4r5.uart.base) == ("LPUART1", 0x40008000)
    f411 = get_board("nucleo-f411re")
    assert (f411.clock_hz, f411.flash.size, f411.sram.size) == (100 * MHz, 512 * KiB, 128 * KiB)
    assert (f411.uart.peripheral, f411.uart.base) == ("USART2", 0x40004400)
    disco = get_board("disco-f746ng")
    assert (disco.uart.peripheral, disco.uart.base) == ("USART1", 0x40011000)
    nrf = get_board("nrf52840dk")
    assert (nrf.clock_hz, nrf.flash.origin, nrf.sram.size) == (64 * MHz, 0, 256 * KiB)
    assert nrf.uart.base == 0x40002000


def test_emulated_boards_match_the_mps2_memory_map():
    for name, core in [("mps2-an385", "cortex-m3"), ("mps2-an386", "cortex-m4"), ("mps2-an500", "cortex-m7")]:
        board = get_board(name)
        assert board.emulated and board.core == core and board.clock_hz == 25 * MHz
        assert (board.flash.origin, board.flash.size) == (0, 4 * MiB)
        assert (board.sram.origin, board.sram.size) == (0x20000000, 4 * MiB)
        assert board.uart.base == 0x40004000
        assert board.firmware_family == "mps2" and board.qemu_counter_hz == 25 * MHz


# Application notes and datasheets: core, FPU, clock, flash (origin, size), SRAM (origin, size), UART.
MANUALS = {
    "mps2-an505": ("cortex-m33", "fpv5-sp-d16", 20 * MHz, (0x10000000, 4 * MiB), (0x38000000, 4 * MiB), 0x50200000),
    "mps3-an547": ("cortex-m55", "fpv5-d16", 32 * MHz, (0, 512 * KiB), (0x21000000, 4 * MiB), 0x59303000),
    "microbit": ("cortex-m0", "none", 16 * MHz, (0, 256 * KiB), (0x20000000, 16 * KiB), 0x40002000),
    "netduinoplus2": ("cortex-m4", "fpv4-sp-d16", 168 * MHz, (0x08000000, 1 * MiB), (0x20000000, 128 * KiB),
                      0x40011000),
}


@pytest.mark.parametrize("name", sorted(MANUALS))
def test_other_emulated_boards_match_their_manuals(name):
    board = get_board(name)
    core, fpu, clock, flash, sram, uart = MANUALS[name]
    assert (board.core, board.fpu, board.clock_hz, board.uart.base) == (core, fpu, clock, uart)
    assert (board.flash.origin, board.flash.size) == flash and (board.sram.origin, board.sram.size) == sram
    # only the emulated STM32, whose RCC QEMU does not model, may fail its clock set-up
    assert board.clock_setup_may_fail == (name == "netduinoplus2")


@pytest.mark.parametrize("name", ["nucleo-f767zi", "nrf52840dk"])
def test_builtin_pyocd_targets_agree_with_pyocds_memory_map(name):
    """pyOCD's built-in targets are an independent source for these boards' memory."""
    builtin = pytest.importorskip("pyocd.target.builtin")
    board = get_board(name)
    assert board.pyocd_pack is None  # built in: no device pack needed
    memory = builtin.BUILTIN_TARGETS[board.pyocd_target].MEMORY_MAP
    flash = [r for r in memory if r.is_flash and r.start < 0x10000000]
    ram = [r for r in memory if r.is_ram]
    assert min(r.start for r in flash) == board.flash.origin
    assert sum(r.length for r in flash) == board.flash.size
    assert (ram[0].start, ram[0].length) == (board.sram.origin, board.sram.size)


# --- lookup by name and by path -------------------------------------------------------------


def test_get_board_by_path_of_a_users_own_file(tmp_path):
    path = write(tmp_path, USER_BOARD)
    for given in (path, str(path)):
        board = get_board(given)
        assert board.name == "my-board"  # a user's file may be named differently from its board
        assert board.source == path
        assert board.sram.size == 320 * KiB and board.clock_hz == 216 * MHz
    assert load_board_file(path) == get_board(str(path))


def test_user_board_without_pack_and_with_integer_units(tmp_path):
    text = replaced('pack = "Keil.STM32F7xx_DFP"\n', "")
    text = text.replace('clock = "216 MHz"', "clock = 216000000")
    text = text.replace('size = "320 KiB"', "size = 327680")
    board = load_board_file(write(tmp_path, text))
    assert board.pyocd_pack is None
    assert board.clock_hz == 216 * MHz and board.sram.size == 320 * KiB


def test_user_emulated_board(tmp_path):
    text = replaced('emulated = false', 'emulated = true').replace('"cycles"', '"instructions"')
    text = text.split("[pyocd]")[0] + '[qemu]\nmachine = "mps2-an500"\ncounter_clock = 25000000\n'
    board = load_board_file(write(tmp_path, text))
    assert board.emulated and board.qemu_machine == "mps2-an500" and board.pyocd_target is None
    assert board.qemu_counter_hz == 25 * MHz and board.firmware_family is None and not board.clock_setup_may_fail


def test_user_board_naming_its_firmware_family(tmp_path):
    board = load_board_file(write(tmp_path, USER_BOARD + '[firmware]\nfamily = "stm32f7"\n'))
    assert board.firmware_family == "stm32f7" and not board.clock_setup_may_fail


def test_missing_user_file_names_the_path(tmp_path):
    with pytest.raises(BoardError, match="nothere.toml"):
        get_board(str(tmp_path / "nothere.toml"))


def test_bundled_board_name_must_match_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(boards, "BOARD_DIR", tmp_path)
    write(tmp_path, USER_BOARD, name="other-name.toml")
    with pytest.raises(BoardError) as info:
        get_board("other-name")
    assert "other-name.toml" in str(info.value) and "'name'" in str(info.value)


# --- bad inputs -----------------------------------------------------------------------------

EMULATED_WITH_CYCLES = (
    replaced("emulated = false", "emulated = true").split("[pyocd]")[0]
    + '[qemu]\nmachine = "mps2-an386"\ncounter_clock = "25 MHz"\n'
)
EMULATED = EMULATED_WITH_CYCLES.replace('"cycles"', '"instructions"')


def plan_at(address: int) -> str:
    return f"[plan]\naddress = {address:#010x}\n"


PLAN = plan_at(0x08080000)
PYOCD = USER_BOARD[USER_BOARD.index("[pyocd]") :]
BAUD_LINE = USER_BOARD.splitlines().index("baud = 115200") + 1

BAD_FILES = {
    # case: (file content, words the message must contain besides the file name)
    "unknown top-level key": ("colour = 'blue'\n" + USER_BOARD, ["colour"]),
    "unknown nested key": (replaced('size = "320 KiB"', 'sise = "320 KiB"'), ["sram.sise"]),
    "missing field": (replaced('core = "cortex-m7"\n', ""), ["core"]),
    "missing table": (USER_BOARD[: USER_BOARD.index("[uart]")] + PYOCD, ["[uart]"]),
    "ambiguous KB": (replaced('"320 KiB"', '"320 KB"'), ["sram.size", "KiB"]),
    "zero size": (replaced('"1 MiB"', '"0 MiB"'), ["flash.size", "positive"]),
    "size as a float": (replaced('"320 KiB"', "320.5"), ["sram.size"]),
    "clock in MHz given as Hz": (replaced('"216 MHz"', "216"), ["clock", "MHz"]),
    "implausible clock": (replaced('"216 MHz"', '"216 GHz"'), ["clock", "2 GHz"]),
    "unknown clock unit": (replaced('"216 MHz"', '"216 Mhz"'), ["clock", "MHz"]),
    "bad core": (replaced('"cortex-m7"', '"cortex-m5"'), ["core", "cortex-m4"]),
    "bad fpu": (replaced('"fpv5-sp-d16"', '"vfpv3"'), ["fpu"]),
    "fpu the core lacks": (replaced('core = "cortex-m7"', 'core = "cortex-m4"'), ["fpu"]),
    "wrong type": (replaced("emulated = false", 'emulated = "no"'), ["emulated", "true"]),
    "address as a string": (replaced("base = 0x40004800", 'base = "0x40004800"'), ["uart.base"]),
    "table given as value": ("plan = 5\n" + replaced(PLAN, ""), ["plan", "table"]),
    "emulated board counting cycles": (EMULATED_WITH_CYCLES, ["counter", "instructions"]),
    "emulated board without its counter's clock": (EMULATED.replace('counter_clock = "25 MHz"\n', ""),
                                                   ["qemu.counter_clock"]),
    "counter clock in MHz given as Hz": (EMULATED.replace('"25 MHz"', "25"), ["qemu.counter_clock", "MHz"]),
    "real board whose clock set-up may fail": (USER_BOARD + '[firmware]\nfamily = "stm32f7"\n'
                                               "clock_setup_may_fail = true\n", ["clock_setup_may_fail", "real"]),
    "firmware family as a path": (USER_BOARD + '[firmware]\nfamily = "../stm32f7"\n', ["firmware.family"]),
    "real board without pyocd": (USER_BOARD.split("[pyocd]")[0], ["pyocd"]),
    "real board with qemu": (USER_BOARD + '[qemu]\nmachine = "mps2-an386"\n', ["qemu"]),
    "plan outside flash": (replaced(PLAN, plan_at(0x08200000)), ["plan.address"]),
    "plan at the firmware": (replaced(PLAN, plan_at(0x08000000)), ["plan.address"]),
    "plan at the very end": (replaced(PLAN, plan_at(0x080FFFFC)), ["plan.address"]),
    "plan unaligned": (replaced(PLAN, plan_at(0x08080002)), ["plan.address", "aligned"]),
    "sram overlapping flash": (replaced("origin = 0x20000000", "origin = 0x08000000"), ["sram"]),
    "bad name": (replaced('"my-board"', '"My Board"'), ["name"]),
    "toml syntax error": (replaced("baud = 115200", "baud = = 115200"), [f"line {BAUD_LINE}"]),
    "duplicate key": (replaced("baud = 115200", "baud = 115200\nbaud = 9600"), ["TOML"]),
    "garbage bytes": (b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00garbage", ["UTF-8"]),
    "empty file": ("", ["empty", "name"]),
    "only whitespace": ("\n  \n", ["empty", "clock"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_board_file_is_refused_naming_file_and_field(tmp_path, case):
    text, words = BAD_FILES[case]
    path = write(tmp_path, text)
    with pytest.raises(BoardError) as info:
        get_board(str(path))
    message = str(info.value)
    assert "myboard.toml" in message
    for word in words:
        assert word in message
    assert "\n" not in message  # the CLI prints it on one line
    assert isinstance(info.value, HwbenchError)


def test_unknown_board_name_lists_the_known_ones():
    with pytest.raises(BoardError) as info:
        get_board("nucleo-h743zi")
    message = str(info.value)
    assert "nucleo-h743zi" in message
    assert all(name in message for name in BUNDLED)


# --- units ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, hz",
    [("216 MHz", 216 * MHz), ("64000 kHz", 64 * MHz), ("25000000 Hz", 25 * MHz),
     ("1.5 GHz", 1_500_000_000), (48_000_000, 48 * MHz)],
)
def test_parse_clock(text, hz):
    assert parse_clock(text) == hz


@pytest.mark.parametrize(
    "text, size",
    [("320 KiB", 320 * KiB), ("1 MiB", MiB), ("512 B", 512), ("2MiB", 2 * MiB), (4096, 4096)],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["320 KB", "1 MB", "320 kB", "-1 KiB", "0 B", 0, -5, True, 1.5])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)
