"""The host side of the firmware's line protocol (firmware/protocol.h): frames are picked out of
whatever the board prints, checked against their CRC32, and gathered into one BoardReport. Boot
noise, garbage bytes and damaged lines are counted, never fatal.

Also here: the firmware's seeded input generator, reproduced so the host can compute the
reference output for exactly the input the board used.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from hwbench.graph import Graph

FRAME = re.compile(r"@([A-Z]+(?: [^@#\s]+)*)#([0-9a-f]{8})")
PROTOCOL_VERSION = 1


@dataclass
class BoardReport:
    firmware_hash: str | None = None
    protocol: int | None = None
    ops: int | None = None
    arena_bytes: int | None = None
    arena_capacity: int | None = None
    calibration_ticks: int | None = None
    totals: dict[int, int] = field(default_factory=dict)  # run -> ticks of the whole inference
    layers: dict[int, dict[int, int]] = field(default_factory=dict)  # run -> step -> ticks
    outputs: dict[int, bytearray] = field(default_factory=dict)
    stack_bytes: int | None = None
    clock_hz: int | None = None  # boards that set their clock up report what it reached
    clock_failure: str | None = None  # the ready bit that never came, when the set-up failed
    done: bool = False
    error: str | None = None  # what the firmware reported, "code: text"
    fault: str | None = None
    frames: int = 0
    damaged: int = 0  # frames whose checksum did not match
    last_line: str = ""


def parse_output(text: str) -> BoardReport:
    report = BoardReport()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            report.last_line = stripped[:200]
        for match in FRAME.finditer(line):
            payload, crc = match.groups()
            if zlib.crc32(payload.encode()) != int(crc, 16):
                report.damaged += 1
                continue
            report.frames += 1
            try:
                _apply(report, payload.split(" "))
            except (ValueError, IndexError):
                report.damaged += 1
    return report


def _apply(report: BoardReport, fields: list[str]) -> None:
    kind, args = fields[0], fields[1:]
    if kind == "HELLO":
        report.protocol, report.firmware_hash = int(args[0]), args[1]
    elif kind == "PLAN":
        report.ops, report.arena_bytes, report.arena_capacity = int(args[0]), int(args[1]), int(args[2])
    elif kind == "CAL":
        report.calibration_ticks = int(args[0])
    elif kind == "TOTAL":
        report.totals[int(args[0])] = int(args[2])
    elif kind == "LAYER":
        report.layers.setdefault(int(args[0]), {})[int(args[1])] = int(args[2])
    elif kind == "OUT":
        index, offset, data = int(args[0]), int(args[1]), bytes.fromhex(args[2])
        buffer = report.outputs.setdefault(index, bytearray())
        if offset != len(buffer):
            raise ValueError("output chunk out of order")
        buffer += data
    elif kind == "STACK":
        report.stack_bytes = int(args[0])
    elif kind == "CLOCK":
        report.clock_hz, report.clock_failure = int(args[0]), None if args[1] == "ok" else args[1]
    elif kind == "DONE":
        report.done = True
    elif kind == "ERROR":
        report.error = f"{args[0]}: {' '.join(args[1:])}"
    elif kind == "FAULT":
        cfsr, hfsr, pc, lr = (int(a) for a in args[:4])
        report.fault = f"hard fault at pc {pc:#010x} (lr {lr:#010x}, CFSR {cfsr:#010x}, HFSR {hfsr:#010x})"


def input_values(graph: Graph, seed: int) -> list[np.ndarray]:
    """The inputs the firmware's `fill_inputs` writes for `seed` (xorshift32, top byte of each
    number; float32 inputs take that byte as int8 / 32)."""
    state = seed or 1
    values = []
    for index in graph.inputs:
        t = graph.tensors[index]
        raw = np.empty(t.size, np.uint8)
        for k in range(t.size):
            state ^= (state << 13) & 0xFFFFFFFF
            state ^= state >> 17
            state ^= (state << 5) & 0xFFFFFFFF
            raw[k] = state >> 24
        if t.dtype == "float32":
            values.append((raw.view(np.int8).astype(np.float32) / np.float32(32)).reshape(t.shape))
        else:
            values.append(raw.view(t.dtype).reshape(t.shape))
    return values
