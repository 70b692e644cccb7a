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
FINAL_KINDS = ("DONE", "ERROR", "FAULT")  # after one of these the board prints nothing more


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
    settings: dict[str, int] = field(default_factory=dict)  # clock and memory-system settings in effect
    done: bool = False
    error: str | None = None  # what the firmware reported, "code: text"
    fault: str | None = None
    frames: int = 0
    damaged: int = 0  # frames whose checksum did not match
    last_line: str = ""

    def settings_problem(self, clock_hz: int, settings: dict[str, int]) -> str | None:
        """Why the clock and settings the board reported are not the `settings` (name -> value) at
        `clock_hz` its firmware was built for, or None. A failed clock set-up is reported apart
        (an ERROR, or allowed on an emulator) and is not checked here."""
        if self.clock_failure:
            return None
        if self.clock_hz is None:
            return f"the board reported no clock settings, its board file asks {_settings(settings)}" if settings else None
        if self.clock_hz != clock_hz:
            return f"board runs at {self.clock_hz:,} Hz, its board file asks {clock_hz:,} Hz"
        differing = {name: value for name, value in settings.items() if self.settings.get(name) != value}
        if differing:
            got = {name: self.settings.get(name, "unreported") for name in differing}
            return f"board runs with {_settings(got)}, its board file asks {_settings(differing)}"
        return None


def _settings(values: dict) -> str:
    return " ".join(f"{name}={value}" for name, value in values.items())


def frames(line: str) -> list[tuple[str, bool]]:
    """The frames in one line of output: (payload, whether its checksum matches)."""
    return [(payload, zlib.crc32(payload.encode()) == int(crc, 16)) for payload, crc in FRAME.findall(line)]


def is_final(line: str) -> bool:
    """Whether a line holds an intact frame after which the board prints nothing more."""
    return any(intact and payload.split(" ")[0] in FINAL_KINDS for payload, intact in frames(line))


def parse_output(text: str) -> BoardReport:
    report = BoardReport()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            report.last_line = stripped[:200]
        for payload, intact in frames(line):
            if not intact:
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
        report.settings = {name: int(value) for name, value in (setting.split("=") for setting in args[2:])}
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
