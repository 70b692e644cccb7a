"""A real board's serial port, through pyserial: found from the board's debug probe — an ST-LINK's or
J-Link OB's virtual COM port is a function of the same USB device, so it carries the probe's serial
number as its USB serial number — or given by path; and a board run read from it with the same
protocol parser as QEMU's: reset the board, read until it finishes; a board that stays silent or
stops answering is reset and read once more before the run is recorded as failed, with the reason."""

from __future__ import annotations

import time
from typing import Callable

from hwbench.errors import HwbenchError
from firmware_runner.backends import BoardRun
from firmware_runner.backends.stream import StreamRead, read_protocol

FIRST_LINE_SECONDS = 5.0  # a board prints its first line within milliseconds of a reset
POLL_SECONDS = 0.05  # how long one read waits for bytes


def port_of_probe(unique_id: str) -> str | None:
    """The serial port whose USB serial number is the probe's unique ID, or None. (A J-Link reports
    its serial number padded with zeros to 12 digits, pyOCD without them.)"""
    from serial.tools import list_ports

    wanted = unique_id.lstrip("0").lower()
    ports = sorted(port.device for port in list_ports.comports()
                   if port.serial_number and port.serial_number.lstrip("0").lower() == wanted)
    return ports[0] if ports else None


class SerialBoard:
    """An open serial port to one board."""

    def __init__(self, path: str, baud: int):
        import serial

        try:
            self.port = serial.Serial(path, baud, timeout=POLL_SECONDS)
        except (serial.SerialException, ValueError) as e:
            raise HwbenchError(f"{path}: cannot open the serial port ({e}); `hwbench doctor` checks serial "
                               f"permissions (the dialout group)") from None
        self.path = path

    def run(self, reset: Callable[[], None], timeout: float) -> BoardRun:
        """Reset the board and read its run; once more after another reset if it did not finish."""
        start = time.monotonic()
        for _ in range(2):
            try:
                self.port.reset_input_buffer()  # what an idle board printed before belongs to no run
            except OSError as e:
                return BoardRun("", None, False, 0.0, problem=f"serial port {self.path} failed: {e}")
            reset()
            got = read_protocol(self._read, timeout, FIRST_LINE_SECONDS)
            if got.finished or got.ended:
                break
        return BoardRun(got.output, None, None, time.monotonic() - start, problem=self._problem(got, timeout))

    def close(self) -> None:
        self.port.close()

    def _read(self) -> bytes:
        return self.port.read(max(1, self.port.in_waiting))

    def _problem(self, got: StreamRead, timeout: float) -> str | None:
        last = got.output.strip().splitlines()[-1][:200] if got.output.strip() else ""
        if got.ended:
            return f"serial port {self.path} failed: {got.ended} (last line: {last!r})"
        if got.silent:
            return (f"board silent: no protocol line on {self.path} within {FIRST_LINE_SECONDS:g} s of a reset, "
                    f"twice (last line: {last!r})")
        if got.timed_out:
            return f"board stopped answering: not finished within {timeout:.0f} s, twice (last line: {last!r})"
        return None
