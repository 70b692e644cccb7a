"""The debug probe, through pyOCD's Python API. This is the only module that talks to pyOCD, and it is
kept thin — find the connected probes, look a target up, connect, program, write memory, reset,
close — so that everything above it (which image goes where, reading the board, retrying a silent
one) is shared with the emulated boards and tested there. Discovery and the target and pack look-ups
run without hardware; the rest needs a board.

pyOCD calls made: ConnectHelper.get_all_connected_probes(blocking=False); probe.unique_id,
vendor_name, product_name, associated_board_info; pyocd.target.TARGET; Session(None, ...) with
is_pack_target_available(); ConnectHelper.session_with_chosen_probe(unique_id=...,
target_override=..., pack=...) and session.open(); FileProgrammer(session, chip_erase="sector",
smart_flash=True).program(); session.target.halt(), write_memory_block8(), reset(); session.close().
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hwbench.errors import HwbenchError


class ProbeError(HwbenchError):
    """The probe or pyOCD failed while talking to the board."""


@dataclass(frozen=True)
class ProbeInfo:
    unique_id: str
    vendor: str
    product: str
    board: str | None  # the board pyOCD recognises behind the probe (from its board ID), if any
    target: str | None  # that board's pyOCD target type


def connected_probes() -> list[ProbeInfo]:
    """The debug probes connected now (pyOCD's discovery, which does not wait for one)."""
    from pyocd.core.helpers import ConnectHelper

    probes = []
    for probe in ConnectHelper.get_all_connected_probes(blocking=False):
        info = probe.associated_board_info
        probes.append(ProbeInfo(probe.unique_id, probe.vendor_name, probe.product_name, info.name if info else None,
                                info.target.lower() if info and info.target else None))
    return probes


def target_problem(target: str, pack_name: str | None, pack_file: Path | None = None) -> str | None:
    """None when pyOCD knows the target type — built in, from an installed CMSIS device pack, or from
    `pack_file` — else what to do about it."""
    from pyocd.core.session import Session
    from pyocd.target import TARGET
    from pyocd.target.pack.pack_target import is_pack_target_available

    if target.lower() in TARGET:
        return None
    if pack_file is not None:
        if not pack_file.is_file():
            return f"{pack_file}: no such CMSIS pack file (--pack)"
        try:
            found = is_pack_target_available(target, Session(None, no_config=True, pack=[str(pack_file)]))
        except Exception as e:  # pyOCD raises zip, XML and its own errors for a damaged pack
            return f"{pack_file}: not a CMSIS pack pyOCD can read ({type(e).__name__}: {e})"
        return None if found else f"{pack_file}: this CMSIS pack has no target '{target}'"
    if is_pack_target_available(target, Session(None, no_config=True)):
        return None
    download = f"download {pack_name} (a .pack file) and give it with --pack FILE.pack" if pack_name else \
        "give its CMSIS pack with --pack FILE.pack"
    return (f"pyOCD does not know the target '{target}': install its CMSIS device pack with "
            f"`pyocd pack install {target}` (needs the internet), or {download}")


class ProbeConnection:
    """An open pyOCD session with one probe and its board."""

    def __init__(self, unique_id: str, target: str, pack_file: Path | None = None):
        from pyocd.core.helpers import ConnectHelper

        options = dict(target_override=target, hide_programming_progress=True)
        if pack_file is not None:
            options["pack"] = [str(pack_file)]
        with _probe_errors(f"connecting to debug probe {unique_id}"):
            self.session = ConnectHelper.session_with_chosen_probe(blocking=False, return_first=True,
                                                                   unique_id=unique_id, **options)
            if self.session is None:
                raise ProbeError(f"debug probe {unique_id} is no longer connected")
            self.session.open()

    def program(self, data: bytes | Path, address: int | None = None) -> None:
        """Program an ELF file, or `data` at `address`, into flash: only the sectors it covers are
        erased, and sectors that already hold it are left alone (pyOCD's smart flash)."""
        from pyocd.flash.file_programmer import FileProgrammer

        with _probe_errors("programming flash"):
            programmer = FileProgrammer(self.session, chip_erase="sector", smart_flash=True)
            if isinstance(data, Path):
                programmer.program(str(data), file_format="elf")
            else:
                programmer.program(io.BytesIO(data), file_format="bin", base_address=address)

    def write_memory(self, address: int, data: bytes) -> None:
        """Write RAM with the core halted."""
        with _probe_errors(f"writing {len(data):,} bytes at {address:#010x}"):
            self.session.target.halt()
            self.session.target.write_memory_block8(address, data)

    def reset(self) -> None:
        """Reset the board and let it run."""
        with _probe_errors("resetting the board"):
            self.session.target.reset()

    def close(self) -> None:
        with _probe_errors("closing the debug session"):
            self.session.close()


@contextmanager
def _probe_errors(doing: str):
    """Turns what pyOCD and USB raise into one ProbeError saying what was being done."""
    from pyocd.core.exceptions import Error

    try:
        yield
    except (Error, OSError) as e:
        raise ProbeError(f"{doing}: {type(e).__name__}: {e}") from e
