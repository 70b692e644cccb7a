"""Reading the firmware's protocol from a live byte stream (a serial port, a pipe) as it arrives: until
the line after which the board prints nothing more, a time limit, or a silence that says the board
is not answering. Boot noise and damaged lines are kept for the parser, which tolerates them.
Shared by the backends that read a board while it runs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from firmware_runner.firmware.protocol import frames, is_final

MAX_OUTPUT = 16 * 1024 * 1024  # far beyond any report (a few hundred KB): a board printing more is runaway


@dataclass(frozen=True)
class StreamRead:
    output: str  # everything read, decoded leniently
    finished: bool  # a final line (DONE, ERROR, FAULT) came
    silent: bool  # no protocol line within the first-line limit: the board is not answering
    timed_out: bool  # it answered but did not finish within the time limit
    ended: str | None  # the stream ended or failed before the board finished: why
    seconds: float


def read_protocol(read: Callable[[], bytes], timeout: float, first_line: float) -> StreamRead:
    """Read until the board finishes, stays silent for `first_line` seconds from the start, or
    `timeout` seconds pass. `read` returns what arrived (b"" after a short wait when nothing did) and
    raises OSError or EOFError when the stream ends."""
    start = time.monotonic()
    data = bytearray()
    scanned = 0  # the bytes before this were complete lines, already looked at
    heard = finished = False
    ended = None
    while not finished:
        try:
            data += read()
        except (OSError, EOFError) as e:
            ended = str(e) or type(e).__name__
            break
        last_newline = data.rfind(b"\n")
        if last_newline >= scanned:
            for line in data[scanned:last_newline].decode("ascii", errors="replace").split("\n"):
                heard = heard or any(intact for _, intact in frames(line))
                finished = finished or is_final(line)
            scanned = last_newline + 1
        elapsed = time.monotonic() - start
        if finished or (not heard and elapsed > first_line) or elapsed > timeout:
            break
        if len(data) > MAX_OUTPUT:
            ended = f"the board printed more than {MAX_OUTPUT:,} bytes without finishing"
            break
    return StreamRead(data.decode("ascii", errors="replace"), finished, not heard and not finished and ended is None,
                      heard and not finished and ended is None, ended, time.monotonic() - start)
