"""Damaged plans under AddressSanitizer and UBSan: thousands of mutations of real plans go through
the runtime (tests/plan_fuzz_driver.c); each one must be refused with a status code when it is
loaded or run within its bounds. Most mutations keep the CRC valid, so they reach the table, operand
and kernel checks rather than stopping at the checksum. Kernels check once, at load: a plan that
loads runs."""

from __future__ import annotations

import struct
import subprocess
import zlib

import numpy as np
import pytest

from hwbench.tflite_reader import read_tflite
from firmware_runner.runtime.host import SANITIZE_FLAGS, compile_c, runtime_sources
from firmware_runner.compiler.plan import HEADER, OP, compile_plan

DRIVER = "plan_fuzz_driver.c"
MUTANTS_PER_PLAN = 600
EXTREMES = (0, 1, 2, 3, 4, 15, 16, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def metadata_ranges(blob: bytes) -> list[tuple[int, int]]:
    """The bytes that describe the model rather than hold weights: header, tables, operand lists
    and parameter structs."""
    fields = HEADER.unpack_from(blob)
    op_count, ops_at, data_at = fields[7], fields[11], fields[13]
    ranges = [(0, data_at)]
    for i in range(op_count):
        _, n_in, n_out, _, _, operands, params, params_size, _, _ = OP.unpack_from(blob, ops_at + i * OP.size)
        ranges += [(operands, operands + 2 * (n_in + n_out)), (params, params + params_size)]
    return [(a, b) for a, b in ranges if b > a]


def with_crc(blob: bytearray) -> bytes:
    if len(blob) >= 16:
        struct.pack_into("<I", blob, 12, zlib.crc32(blob[16:]))
    return bytes(blob)


def mutate(blob: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(blob)
    ranges = metadata_ranges(blob)
    kind = rng.integers(10)
    if kind == 0:  # a flipped byte with the old CRC: refused by the checksum
        out[rng.integers(16, len(out))] ^= 1 << rng.integers(8)
        return bytes(out)
    if kind == 1:  # cut short
        return with_crc(out[:rng.integers(0, len(out))])
    start, end = ranges[rng.integers(len(ranges))]
    for _ in range(rng.integers(1, 4)):
        at = int(rng.integers(start, end))
        if kind < 6:
            out[at] = rng.integers(256)
        else:  # a whole 4-byte field to an extreme value
            at -= at % 4
            if at + 4 <= len(out):
                struct.pack_into("<I", out, at, EXTREMES[rng.integers(len(EXTREMES))])
    return with_crc(out)


@pytest.fixture(scope="module")
def sanitized_driver(tmp_path_factory):
    from pathlib import Path

    here = Path(__file__).parent
    out = tmp_path_factory.mktemp("fuzz") / "plan_fuzz"
    return compile_c(out, [here / DRIVER, *runtime_sources()], ("-std=c99", *SANITIZE_FLAGS))


@pytest.fixture(scope="module")
def plans(generated) -> list:
    """The four smallest generated models (under ASan the conv loops are slow) and one model
    mixing every operator."""
    from hwbench.tflite_reader import parse_tflite
    from keras_ops import mixed_operator_model

    folder, entries = generated
    small = sorted(entries, key=lambda e: e["macs"])[:4]
    graphs = [read_tflite(folder / e["file"]) for e in small] + [parse_tflite(mixed_operator_model(), "mixed")]
    return [compile_plan(g) for g in graphs]


def test_mutated_plans_are_refused_or_run_in_bounds(plans, sanitized_driver, tmp_path):
    rng = np.random.default_rng(2026)
    files = []
    for i, plan in enumerate(plans):
        blob = plan.blob
        for k in range(MUTANTS_PER_PLAN):
            path = tmp_path / f"{i}-{k}.plan"
            path.write_bytes(mutate(blob, rng) if k else blob)
            files.append(str(path))
    done = subprocess.run([str(sanitized_driver), *files], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "runtime error" not in done.stderr and "AddressSanitizer" not in done.stderr, done.stderr[-3000:]
    counts = {" ".join(line.split()[:-1]): int(line.split()[-1]) for line in done.stdout.splitlines()}
    assert sum(v for k, v in counts.items() if k.startswith("load")) == len(files)
    assert counts.get("run ok", 0) >= len(plans)  # the unmutated plans, at least
    refusals = {k for k in counts if k.startswith("load") and k != "load ok"}
    assert {"load CRC mismatch", "load plan size", "load layout", "load bad tensor", "load bad op",
            "load bad parameters", "load shape mismatch"} <= refusals, counts
    assert any(op.kernel == "MEAN" for plan in plans for op in plan.ops)
    assert {k for k in counts if k.startswith("run")} == {"run ok"}, counts
