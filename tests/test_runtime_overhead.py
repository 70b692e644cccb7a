"""The interpreter's own cost per op on the emulated Cortex-M4: a plan of trivial ops (RESHAPEs, which
the arena planner aliases, so their kernel only compares two pointers), counted in instructions
under QEMU's -icount, which counts the same every run."""

from __future__ import annotations

import numpy as np

from hwbench.boards import get_board
from hwbench.graph import Graph, Op, Quantization, Tensor

MAX_OVERHEAD = 100  # instructions per op (issue 12, requirement 5)


def reshape_chain(ops: int) -> Graph:
    shapes = [(1, 8, 8), (1, 64)]
    tensors = [Tensor(f"t{i}", shapes[i % 2], "int8", Quantization(np.array([0.1], np.float32), np.array([0])))
               for i in range(ops + 1)]
    return Graph(tensors, [Op("RESHAPE", (i,), (i + 1,)) for i in range(ops)], (0,), (ops,), f"reshape{ops}")


def test_the_interpreter_costs_at_most_100_instructions_per_op():
    from firmware_runner.backends.qemu import QemuBackend
    from firmware_runner.collect import run_image
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.firmware.build import build_firmware
    from firmware_runner.firmware.protocol import parse_output

    board = get_board("mps2-an386")
    firmware, backend = build_firmware(board), QemuBackend(board)
    totals, layers = {}, {}
    for ops in (10, 110):
        plan = compile_plan(reshape_chain(ops))
        assert {op.kernel for op in plan.ops} == {"RESHAPE"} and len(plan.ops) == ops
        report = parse_output(backend.run(firmware, run_image(plan.blob, 1, 1), timeout=60).output)
        assert report.done, report.last_line
        cal = report.calibration_ticks
        totals[ops] = backend.count(report.totals[0] - cal)
        layers[ops] = [backend.count(report.layers[0][step] - cal) for step in range(ops)]
    per_op = (totals[110] - totals[10]) / 100  # a whole invoke: the loop, the call, the kernel
    assert 0 < per_op <= MAX_OVERHEAD, per_op
    assert 0 < max(layers[110]) <= MAX_OVERHEAD, max(layers[110])  # one op run by itself, as collect counts it


def test_a_plan_runs_in_its_decoded_table_then_its_arena_and_not_in_a_byte_less():
    import ctypes

    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.host import HostRuntime, _Context, _aligned, host_library

    plan = compile_plan(reshape_chain(3))
    lib = host_library()
    blob = _aligned(len(plan.blob))
    blob[:] = np.frombuffer(plan.blob, np.uint8)
    needed = ctypes.c_uint32(0)
    assert lib.hwb_memory_size(blob.ctypes.data, len(blob), ctypes.byref(needed)) == 0
    assert needed.value > plan.arena_size  # the table comes first
    memory = _aligned(needed.value)
    statuses = [lib.hwb_load(ctypes.byref(_Context()), blob.ctypes.data, len(blob), memory.ctypes.data, size)
                for size in (needed.value - 1, needed.value)]
    assert [lib.hwb_status_name(s).decode() for s in statuses] == ["arena", "ok"]
    x = np.arange(64, dtype=np.int8).reshape(1, 8, 8)
    assert HostRuntime(plan).run([x])[0].tobytes() == x.tobytes()
