"""The command line: help, version, tables, JSON, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwbench import __version__
from hwbench.cli import main
from hwbench.costs import graph_cost
from hwbench.tflite_reader import read_tflite


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *phrases: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0]


def test_help_lists_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("boards", "analyze", "generate"):
        assert command in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"hwbench {__version__}"


def test_boards_table_lists_emulated_and_real_boards(capsys):
    code, out, _ = run(capsys, "boards")
    assert code == 0
    assert "mps2-an386" in out and "nucleo-f746zg" in out
    assert "instructions" in out and "cycles" in out and "320 KiB" in out


def test_boards_json_has_every_board_file_field(capsys):
    from hwbench.boards import list_boards

    code, out, _ = run(capsys, "boards", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0 and set(rows) == {b.name for b in list_boards()}
    for board in list_boards():
        row = rows[board.name]
        assert row["kind"] == ("emulated" if board.emulated else "real")
        assert (row["core"], row["clock_hz"], row["counter"]) == (board.core, board.clock_hz, board.counter)
        assert row["sram"] == {"origin": board.sram.origin, "size": board.sram.size}
        assert row["uart"]["base"] == board.uart.base and row["qemu_machine"] == board.qemu_machine
        assert (row["firmware_family"], row["qemu_counter_hz"]) == (board.firmware_family, board.qemu_counter_hz)


def test_analyze_json_agrees_with_the_library(capsys, generated):
    folder, entries = generated
    model = folder / entries[0]["file"]
    code, out, _ = run(capsys, "analyze", str(model), "--json")
    assert code == 0
    report = json.loads(out)
    cost = graph_cost(read_tflite(model))
    assert report["macs"] == cost.macs == entries[0]["macs"]
    assert report["weights_bytes"] == cost.weight_bytes
    assert [layer["op"] for layer in report["layers"]] == [layer.op for layer in cost.layers]


def test_analyze_table_has_every_layer_and_the_total(capsys, generated):
    folder, entries = generated
    code, out, _ = run(capsys, "analyze", str(folder / entries[1]["file"]))
    assert code == 0
    assert f"{entries[1]['macs']:,}" in out
    for op in entries[1]["op_counts"]:
        assert op in out


def test_missing_model_is_one_line(capsys, tmp_path):
    assert_one_line_error(*run(capsys, "analyze", str(tmp_path / "nope.tflite"))[::2], "nope.tflite", "no such file")


def test_bad_option_value_is_one_line(capsys, tmp_path):
    assert_one_line_error(*run(capsys, "generate", "--count", "many", "--out", str(tmp_path))[::2], "--count")


def test_unknown_board_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--count", "1", "--out", str(tmp_path), "--board", "nucleo-x")
    assert_one_line_error(code, err, "nucleo-x", "nucleo-f746zg")


def test_verbose_shows_the_traceback(capsys, tmp_path):
    code, _, err = run(capsys, "-v", "analyze", str(tmp_path / "nope.tflite"))
    assert code != 0 and "Traceback" in err and "no such file" in err


def test_console_script_is_installed_and_exits_non_zero_on_garbage(tmp_path):
    script = shutil.which("hwbench", path=str(Path(sys.executable).parent))
    assert script, "the hwbench console script is not installed next to this Python"
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x13\x37" * 100)
    result = subprocess.run([script, "analyze", str(garbage)], capture_output=True, text=True)
    assert_one_line_error(result.returncode, result.stderr, "garbage.tflite")
