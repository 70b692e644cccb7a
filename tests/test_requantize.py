"""The runtime's requantization shortcuts against what they stand for, on millions of random and edge
cases on the host: FULLY_CONNECTED's requantization in integers (hwb_round_scaled) against the
double-precision formula of LiteRT's reference kernel, with the plan compiler's decomposition of a
double into mantissa and exponent; and the single-rounding hwb_requantize against TFLite's
MultiplyByQuantizedMultiplier."""

from __future__ import annotations

import math
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from firmware_runner.compiler.quantization import double_scale
from firmware_runner.runtime.host import compile_c

CASES = 4_000_000


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    return compile_c(tmp_path_factory.mktemp("requantize") / "requantize",
                     [Path(__file__).parent / "requantize_driver.c"], ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"))


@pytest.mark.parametrize("mode", ["double", "fixed"])
def test_shortcut_equals_the_reference_arithmetic_on_millions_of_cases(driver, mode):
    for seed in (1, 2):
        done = subprocess.run([str(driver), mode, str(CASES // 2), str(seed)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert int(done.stdout) >= CASES // 2


def test_double_scale_is_exact():
    rng = np.random.default_rng(3)
    f32 = lambda: float(np.float32(rng.uniform(1, 2)) * np.float32(2.0 ** rng.integers(-126, 128)))
    values = [0.0, 1.0, 0.5, 2.0 ** -1000, 2.0 ** 1000, math.nextafter(1.0, 2.0)]
    values += [f32() * f32() / f32() for _ in range(20_000)]
    for real in values:
        low, high, exponent = double_scale(real)
        mantissa = high << 32 | low
        assert 0 <= low < 2 ** 32 and (mantissa == 0 or 2 ** 52 <= mantissa < 2 ** 53)
        assert Fraction(mantissa) * Fraction(2) ** exponent == Fraction(real)
