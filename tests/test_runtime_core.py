"""The plan format and the host runtime, on models whose ops need no arithmetic."""

from __future__ import annotations

import pytest

from keras_ops import assert_bit_exact, int8_model, op_types


def test_reshape_model_round_trips_through_the_host_runtime():
    import keras

    model = int8_model(lambda x: keras.layers.Reshape((12, 6))(x), [(4, 6, 3)])
    assert op_types(model) == {"RESHAPE"}
    assert assert_bit_exact(model).output_bytes == 72


CORTEX_M_TARGETS = {
    "cortex-m4 (DSP, FPU)": ("-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
    "cortex-m0plus (ARMv6-M)": ("-mcpu=cortex-m0plus", "-mfloat-abi=soft"),
}


@pytest.mark.parametrize("target", CORTEX_M_TARGETS)
def test_runtime_compiles_warning_free_for_cortex_m(target, tmp_path):
    import shutil
    import subprocess

    from firmware_runner.runtime.host import runtime_sources
    from firmware_runner.runtime.host import RUNTIME_DIR

    assert shutil.which("arm-none-eabi-gcc"), "arm-none-eabi-gcc is installed by make setup"
    cmd = ["arm-none-eabi-gcc", "-std=c99", "-O2", "-mthumb", *CORTEX_M_TARGETS[target], "-Wall", "-Wextra",
           "-Werror", "-ffreestanding", "-I", str(RUNTIME_DIR), "-c", *map(str, runtime_sources())]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list(tmp_path.glob("*.o"))) == len(runtime_sources())


def test_host_build_is_warning_free(tmp_path):
    from firmware_runner.runtime.host import CFLAGS, compile_c, runtime_sources

    compile_c(tmp_path / "lib.so", runtime_sources(), (*CFLAGS, "-shared", "-Werror"))


def test_every_op_the_reader_knows_has_a_lowering_and_every_kernel_a_code():
    from hwbench.graph import KNOWN_OPS
    from firmware_runner.compiler.lowering import LOWERINGS
    from firmware_runner.compiler.plan import op_codes

    assert set(LOWERINGS) == KNOWN_OPS
    codes = op_codes()  # parsed from runtime/hwb_ops.h
    assert sorted(codes.values()) == list(range(1, len(codes) + 1))
    assert set(codes) == KNOWN_OPS - {"SQUEEZE"}  # SQUEEZE runs on the RESHAPE kernel


def test_a_model_mixing_every_operator_with_float_io_is_bit_exact():
    from hwbench.graph import KNOWN_OPS
    from keras_ops import mixed_operator_model

    model = mixed_operator_model()
    assert op_types(model) == KNOWN_OPS - {"SQUEEZE"}  # the converter writes squeezes as RESHAPE
    assert assert_bit_exact(model, samples=4).ops == 32


def test_tflite_multiplier_arithmetic():
    from firmware_runner.compiler.lowering import Unsupported
    from firmware_runner.compiler.quantization import quantize_multiplier, round_half_away

    assert [round_half_away(x) for x in (2.5, -2.5, 0.5, -0.5, 0.49999999999999994, 1.4999999999999998)] == \
        [3, -3, 1, -1, 0, 1]
    for real in (0.5, 0.75, 1e-3, 3.0, 2.0 ** -20, 0.999999999):
        multiplier, shift = quantize_multiplier(real)
        assert 2 ** 30 <= multiplier < 2 ** 31 and abs(multiplier * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)
    assert quantize_multiplier(0.5) == (2 ** 30, 0)
    assert quantize_multiplier(1 - 2 ** -40) == (2 ** 30, 1)  # rounds up to 2^31, renormalised
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # below 2^-32: TFLite flushes it to zero
    with pytest.raises(Unsupported, match="2\\^30 or more"):
        quantize_multiplier(2.0 ** 30)
