"""`hwbench export`: the folder a user builds into their own firmware, built as a user would (a short
main.c) for the emulated Cortex-M4 and for the host, and checked bit for bit against TFLite."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from keras_ops import int8_model

BOARD = "mps2-an386"

# What a user writes: fill the input, run, print the output (in hex on the board's UART).
BOARD_MAIN = r"""
#include "board.h"
#include "model.h"
static uint8_t memory[MODEL_MEMORY_SIZE] __attribute__((aligned(16)));
int main(void) {
    hwb_context ctx;
    board_init();
    if (model_init(&ctx, memory) != HWB_OK) return 1;
    int8_t *in = model_input(&ctx, 0);
    for (uint32_t i = 0; i < MODEL_INPUT0_BYTES; i++) in[i] = (int8_t)(i * 37u + 11u);
    if (model_invoke(&ctx) != HWB_OK) return 2;
    const uint8_t *out = model_output(&ctx, 0);
    for (uint32_t i = 0; i < MODEL_OUTPUT0_BYTES; i++) {
        char hex[2] = {"0123456789abcdef"[out[i] >> 4], "0123456789abcdef"[out[i] & 15]};
        board_write(hex, 2);
    }
    return 0;
}
"""
HOST_MAIN = r"""
#include <stdio.h>
#include "model.h"
static uint8_t memory[MODEL_MEMORY_SIZE] __attribute__((aligned(16)));
int main(void) {
    hwb_context ctx;
    if (model_init(&ctx, memory) != HWB_OK) return 1;
    if (fread(model_input(&ctx, 0), 1, MODEL_INPUT0_BYTES, stdin) != MODEL_INPUT0_BYTES) return 2;
    if (model_invoke(&ctx) != HWB_OK) return 3;
    fwrite(model_output(&ctx, 0), 1, MODEL_OUTPUT0_BYTES, stdout);
    return 0;
}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A small CNN: convolution, depthwise convolution, pooling, a dense layer and softmax."""
    import keras

    def build(x):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
        x = keras.layers.DepthwiseConv2D(3, strides=2, activation="relu")(x)
        x = keras.layers.AveragePooling2D(2)(x)
        return keras.layers.Softmax()(keras.layers.Dense(10)(keras.layers.Flatten()(x)))

    path = tmp_path_factory.mktemp("model") / "cnn.tflite"
    path.write_bytes(int8_model(build, [(12, 12, 3)]))
    return path


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> Path:
    from hwbench.boards import get_board
    from firmware_runner.firmware.build import COMMON_FLAGS, board_flags
    from firmware_runner.runtime.export import export_model

    folder = tmp_path_factory.mktemp("export") / "cnn"
    board = get_board(BOARD)
    export_model(model, board, folder, (*COMMON_FLAGS, *board_flags(board)))
    return folder


def expected_output(model: Path, image: np.ndarray) -> np.ndarray:
    from hwbench.tflite_reader import read_tflite
    from firmware_runner.runtime.reference import reference_run

    graph = read_tflite(model)
    return reference_run(model.read_bytes(), graph, [image.reshape(graph.tensors[graph.inputs[0]].shape)])[0][0]


def exported_sources(folder: Path) -> list[str]:
    return [str(p) for p in sorted([*folder.glob("*.c"), *folder.glob("kernels/*.c")])]


def test_the_export_holds_the_measured_runtime_and_only_the_model_kernels(model, exported):
    from hwbench.analysis import analyze_graph
    from hwbench.boards import get_board
    from hwbench.runtime_hash import runtime_hash
    from hwbench.tflite_reader import read_tflite
    from firmware_runner.runtime.host import RUNTIME_DIR

    header = (exported / "model.h").read_text()
    macros = dict(re.findall(r"#define (\w+) (.+)", header))
    assert int(macros["MODEL_ARENA_SIZE"].rstrip("u")) == analyze_graph(read_tflite(model), "cnn")["arena_bytes"]
    assert macros["MODEL_RUNTIME_HASH"] == f'"{runtime_hash(get_board(BOARD))}"'
    copied = [p.relative_to(exported) for p in exported.rglob("*") if p.is_file()
              and p.name not in ("model.h", "model.c", "README.md")]
    assert all((exported / p).read_bytes() == (RUNTIME_DIR / p).read_bytes() for p in copied)
    # The kernels of CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE (Flatten), FULLY_CONNECTED and
    # SOFTMAX, and the requantization helper the first three share; not the kernel table of all kernels.
    assert sorted(p.name for p in exported.glob("kernels/*.c")) == [
        "average_pool.c", "conv2d.c", "depthwise_conv2d.c", "fully_connected.c", "requantize.c", "reshape.c",
        "softmax.c"]
    assert not (exported / "hwb_kernels.c").exists()
    plan = re.search(r"const uint8_t model_plan\[MODEL_PLAN_SIZE\]", (exported / "model.c").read_text())
    assert plan, "the plan is a const array (in flash)"
    readme = (exported / "README.md").read_text()
    assert runtime_hash(get_board(BOARD)) in readme and "-mcpu=cortex-m4" in readme


def test_the_export_built_with_a_short_main_runs_on_the_emulated_board_bit_exact(model, exported, tmp_path):
    from hwbench.boards import get_board
    from firmware_runner.backends.qemu import QemuBackend
    from firmware_runner.firmware.build import (COMMON_FLAGS, FIRMWARE_DIR, LINK_FLAGS, board_defines, board_flags,
                                                build_firmware)

    board = get_board(BOARD)
    firmware = build_firmware(board)  # its start-up, board support and linker script
    (tmp_path / "main.c").write_text(BOARD_MAIN)
    elf = tmp_path / "app.elf"
    sources = [str(FIRMWARE_DIR / f) for f in ("startup.c", "protocol.c", "mps2.c")]
    done = subprocess.run(["arm-none-eabi-gcc", *COMMON_FLAGS, *board_flags(board), *board_defines(board),
                           "-I", str(FIRMWARE_DIR), "-I", str(exported), str(tmp_path / "main.c"), *sources,
                           *exported_sources(exported), *LINK_FLAGS, "-T", str(firmware.elf.parent / "link.ld"),
                           "-o", str(elf), "-lm"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = QemuBackend(board).run(dataclasses.replace(firmware, elf=elf), b"", timeout=60)
    assert run.exit_code == 0, run.output
    n = int(re.search(r"MODEL_INPUT0_BYTES (\d+)", (exported / "model.h").read_text())[1])
    image = (np.arange(n) * 37 + 11).astype(np.uint8).view(np.int8)
    assert bytes.fromhex(run.output.strip()) == expected_output(model, image).tobytes()


def test_the_export_builds_and_runs_on_the_host_bit_exact(model, exported, tmp_path):
    from firmware_runner.runtime.host import c_compiler

    (tmp_path / "main.c").write_text(HOST_MAIN)
    program = tmp_path / "app"
    done = subprocess.run([c_compiler(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(exported),
                           str(tmp_path / "main.c"), *exported_sources(exported), "-o", str(program), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    image = np.random.default_rng(5).integers(-128, 128, 12 * 12 * 3, dtype=np.int8)
    ran = subprocess.run([str(program)], input=image.tobytes(), capture_output=True, check=True)
    assert ran.stdout == expected_output(model, image).tobytes()


def test_export_refuses_bad_input_in_one_line(model, exported, tmp_path, capsys):
    board_file = tmp_path / "tiny.toml"
    text = (Path(__file__).resolve().parents[1] / "boards" / f"{BOARD}.toml").read_text()
    board_file.write_text(text.replace('name = "mps2-an386"', 'name = "tiny"').replace(
        '[sram]\norigin = 0x20000000\nsize = "4 MiB"', '[sram]\norigin = 0x20000000\nsize = "1 KiB"'))
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(model.read_bytes()[: len(model.read_bytes()) // 2])
    cases = {
        ("--board", "no-such-board", "--out", str(tmp_path / "a")): "no-such-board",
        ("--board", BOARD, "--out", str(tmp_path / "b")): "damaged.tflite",
        ("--board", str(board_file), "--out", str(tmp_path / "c")): "does not fit tiny's 1,024 B of SRAM",
        ("--board", BOARD, "--out", str(exported)): "not an empty folder",
        ("--board", BOARD, "--out", str(tmp_path / "d"), "--name", "9lives"): "not a C identifier",
    }
    for args, expected in cases.items():
        source = damaged if expected == "damaged.tflite" else model
        code, out, err = run_cli(capsys, "export", str(source), *args)
        assert code == 1 and expected in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not any((tmp_path / d).exists() for d in "abcd")
    code, out, _ = run_cli(capsys, "export", str(model), "--board", BOARD, "--out", str(tmp_path / "e"))
    assert code == 0 and "kernels AVERAGE_POOL_2D, CONV_2D" in out
