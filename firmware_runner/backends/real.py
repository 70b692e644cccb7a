"""Real boards: the firmware programmed through the debug probe once per (probe, firmware hash); per
model, the run image (run header + plan) written into SRAM when it fits beside the arena its plan
needs, else programmed into the board's reserved flash region at the plan address (only the sectors
it covers); the board reset, and its run read from its serial port and parsed as QEMU's output is.
Counts are DWT cycles. The probe (pyOCD) and the port (pyserial) are found when the backend is made,
so a missing piece is reported before anything is generated or built."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from hwbench.boards import Board, list_boards
from hwbench.errors import BoardError, HwbenchError
from firmware_runner.backends import BoardRun
from firmware_runner.backends.probe import ProbeConnection, ProbeError, ProbeInfo, connected_probes, target_problem
from firmware_runner.backends.serial_port import SerialBoard, port_of_probe
from firmware_runner.firmware.build import Firmware


def real_backend(board: Board, probe: str | None = None, port: str | None = None,
                 pack: Path | None = None) -> RealBoardBackend:
    """The backend of a real board: its probe (`probe`: a unique ID, default the only one connected),
    its serial port (default: the probe's own) and pyOCD's target (`pack`: a CMSIS pack file), each
    found now so that a missing one is an error saying what to do."""
    if board.emulated or not board.pyocd_target:
        raise BoardError(f"{board.name} is not a real board reached through pyOCD")
    chosen = choose_probe(board, probe)
    port = port or port_of_probe(chosen.unique_id)
    if port is None:
        raise HwbenchError(f"debug probe {chosen.unique_id} has no serial port of its own (none carries its serial "
                           f"number): give {board.name}'s serial port with --port")
    problem = target_problem(board.pyocd_target, board.pyocd_pack, pack)
    if problem:
        raise HwbenchError(f"{board.name}: {problem}")
    return RealBoardBackend(board, chosen.unique_id, port,
                            lambda: ProbeConnection(chosen.unique_id, board.pyocd_target, pack))


def probe_table() -> list[dict]:
    """The connected probes with the bundled board each looks like and its serial port (what
    `hwbench probes` shows)."""
    boards = {board.pyocd_target.lower(): board.name for board in list_boards() if board.pyocd_target}
    return [{"unique_id": p.unique_id, "vendor": p.vendor, "product": p.product,
             "board": boards.get(p.target or "") or p.board, "pyocd_target": p.target,
             "port": port_of_probe(p.unique_id)} for p in connected_probes()]


def choose_probe(board: Board, unique_id: str | None) -> ProbeInfo:
    """The probe with `unique_id`, or the only one connected; anything else is an error saying what
    to connect or choose."""
    probes = connected_probes()
    listing = "; ".join(f"{p.unique_id} ({p.vendor} {p.product}" + (f", on a {p.board}" if p.board else "") + ")"
                        for p in probes)
    if unique_id is not None:
        chosen = [p for p in probes if p.unique_id.lower() == unique_id.lower()]
        if not chosen:
            raise HwbenchError(f"no debug probe with unique ID {unique_id} is connected (connected: {listing or 'none'})")
        return chosen[0]
    if not probes:
        raise HwbenchError(f"no debug probe found: connect {board.name} ({board.description}) to this computer by "
                           f"the USB connector of its on-board debug probe; `hwbench probes` lists what is connected, "
                           f"`hwbench doctor --board {board.name}` checks USB permissions")
    if len(probes) > 1:
        raise HwbenchError(f"{len(probes)} debug probes are connected: {listing}; choose one with --probe UNIQUE_ID")
    return probes[0]


class RealBoardBackend:
    """One board behind one probe. `connect()` opens the probe (a ProbeConnection, or in tests a
    stand-in with the same four methods); `port` is the board's serial port."""

    unit = "cycles"

    def __init__(self, board: Board, probe_id: str, port: str, connect: Callable[[], ProbeConnection]):
        self.board, self.probe_id, self.port, self.connect = board, probe_id, port, connect
        self._lock = threading.Lock()  # one board runs one model at a time, whatever --jobs says
        self._connection: ProbeConnection | None = None
        self._serial: SerialBoard | None = None
        self._programmed: set[str] = set()  # firmware hashes programmed through this connection
        self._stopped = False

    def count(self, ticks: float) -> float:
        return ticks  # DWT cycles are the unit

    def run(self, firmware: Firmware, image: bytes, timeout: float) -> BoardRun:
        with self._lock:
            if self._stopped:
                return BoardRun("", None, "stopped", 0.0)
            try:
                connection = self._connect()
                if firmware.runtime_hash not in self._programmed:
                    connection.program(firmware.elf)
                    self._programmed.add(firmware.runtime_hash)
                in_sram = firmware.run_fits_sram(image)
                if not in_sram:
                    connection.program(image, firmware.run_address)
                # SRAM last: programming flash runs pyOCD's flash algorithm from SRAM. For a run image
                # in flash, clear the SRAM header so the firmware does not take an older one.
                connection.write_memory(firmware.sram_run_address, image if in_sram else bytes(4))
                return self._serial.run(connection.reset, timeout)
            except ProbeError as e:
                self._disconnect()  # the next model connects afresh
                return BoardRun("", None, None, 0.0, problem=f"debug probe {self.probe_id}: {e}")

    def stop(self) -> None:
        """Refuse new runs (the run in progress ends within its timeout: a serial read cannot be cut)."""
        self._stopped = True

    def close(self) -> None:
        with self._lock:
            self._disconnect()

    def _connect(self) -> ProbeConnection:
        if self._connection is None:
            self._serial = self._serial or SerialBoard(self.port, self.board.uart.baud)
            self._connection = self.connect()
        return self._connection

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        self._programmed.clear()  # the board may have been swapped
        if connection is not None:
            try:
                connection.close()
            except ProbeError:
                pass  # already gone
        if self._serial is not None:
            self._serial.close()
            self._serial = None
