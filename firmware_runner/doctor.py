"""`hwbench doctor`: whether this computer has what collecting on a board needs — the Arm toolchain,
QEMU for the emulated boards, and for the real ones pyOCD, its USB access, the CMSIS device packs of
the bundled real boards, the probe's own library (SEGGER's for a J-Link), USB and serial
permissions, and a connected probe — with what to do about each missing piece."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from hwbench.boards import Board, list_boards

UDEV_FOLDERS = (Path("/etc/udev/rules.d"), Path("/lib/udev/rules.d"), Path("/usr/lib/udev/rules.d"))
# The on-board probe each bundled real board carries, by its pyOCD target's family: name, USB vendor ID.
PROBE_KINDS = {"stm32": ("ST-LINK", "0483"), "nrf": ("SEGGER J-Link OB", "1366")}
UDEV_FIX = ("install pyOCD's udev rules (the udev/ folder of pyOCD's source repository) into /etc/udev/rules.d, "
            "then run `sudo udevadm control --reload && sudo udevadm trigger` and plug the board in again")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str  # what was found
    fix: str | None  # what to do when it is missing
    needed: bool  # whether the board asked about needs it (False: information only)


def run_checks(board: Board | None = None, pack_file: Path | None = None) -> list[Check]:
    """Every check, each marked needed when `board` (default: every board) cannot be used without it."""
    real = [b for b in list_boards() if not b.emulated] if board is None or board.emulated else [board]
    needs_real = board is not None and not board.emulated
    needs_qemu = board is not None and board.emulated
    checks = [_toolchain(), _qemu(needs_qemu), _python_module("pyocd", "pyOCD", needs_real),
              _python_module("serial", "pyserial", needs_real), _libusb(needs_real)]
    for target in sorted({b.pyocd_target for b in real}):
        boards = [b for b in real if b.pyocd_target == target]
        checks.append(_device_pack(target, boards[0].pyocd_pack, pack_file, ", ".join(b.name for b in boards),
                                   needs_real))
    for kind, vendor in sorted({_probe_kind(b) for b in real}):
        if kind == "SEGGER J-Link OB":
            checks.append(_jlink_library(needs_real))
        checks.append(_udev_rules(kind, vendor, needs_real))
    checks.append(_serial_permission(needs_real))
    if needs_real:
        checks.append(_probe(board))
    return checks


def check_summary(check: Check) -> dict:
    return asdict(check)


def _probe_kind(board: Board) -> tuple[str, str]:
    return next((kind for prefix, kind in PROBE_KINDS.items() if board.pyocd_target.lower().startswith(prefix)),
                ("CMSIS-DAP", "0d28"))


def _command_version(command: list[str]) -> str | None:
    if not shutil.which(command[0]):
        return None
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else None


def _toolchain() -> Check:
    version = _command_version(["arm-none-eabi-gcc", "--version"])
    libc = _command_version(["arm-none-eabi-gcc", "-print-file-name=libc.a"]) if version else None
    ok = version is not None and libc is not None and Path(libc).is_file()
    found = f"{version}; newlib {'found' if ok else 'missing'}" if version else "arm-none-eabi-gcc not found"
    return Check("Arm toolchain (builds the firmware)", ok, found,
                 None if ok else "run `make setup`, or `sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi`",
                 True)


def _qemu(needed: bool) -> Check:
    version = _command_version(["qemu-system-arm", "--version"])
    return Check("QEMU (runs the emulated boards)", version is not None, version or "qemu-system-arm not found",
                 None if version else "run `make setup`, or `sudo apt-get install qemu-system-arm`", needed)


def _python_module(module: str, name: str, needed: bool) -> Check:
    try:
        imported = __import__(module)
    except ImportError as e:
        return Check(name, False, f"cannot import {module}: {e}", f"reinstall hwbench (`pip install -e .`): it "
                     f"depends on {name}", needed)
    return Check(name, True, f"{name} {getattr(imported, '__version__', '')}".strip(), None, needed)


def _libusb(needed: bool) -> Check:
    try:
        import usb.backend.libusb1

        backend = usb.backend.libusb1.get_backend()
        if backend is None:  # pyOCD also looks in the libusb-package wheel
            import libusb_package

            backend = libusb_package.get_libusb1_backend()
    except ImportError:
        backend = None
    return Check("libusb (pyOCD reaches USB probes through it)", backend is not None,
                 "found" if backend else "no libusb-1.0 library", None if backend else
                 "`sudo apt-get install libusb-1.0-0`", needed)


def _device_pack(target: str, pack_name: str | None, pack_file: Path | None, boards: str, needed: bool) -> Check:
    from firmware_runner.backends.probe import target_problem

    problem = target_problem(target, pack_name, pack_file)
    return Check(f"pyOCD target {target} ({boards})", problem is None, "known to pyOCD" if problem is None else
                 "not known to pyOCD", problem, needed)


def _jlink_library(needed: bool) -> Check:
    try:
        import pylink

        found = pylink.library.Library().dll() is not None
    except ImportError:
        found = False
    return Check("SEGGER J-Link library (pyOCD drives a J-Link through it)", found,
                 "libjlinkarm found" if found else "libjlinkarm not found", None if found else
                 "install SEGGER's \"J-Link Software and Documentation Pack\" (a .deb from segger.com)", needed)


def _udev_rules(kind: str, vendor: str, needed: bool) -> Check:
    name = f"USB access to the {kind} (udev rules for vendor {vendor})"
    if os.geteuid() == 0:
        return Check(name, True, "running as root: no rules needed", None, needed)
    rules = [path for folder in UDEV_FOLDERS if folder.is_dir() for path in sorted(folder.glob("*.rules"))
             if vendor in path.read_text(errors="replace").lower()]
    return Check(name, bool(rules), ", ".join(map(str, rules)) or "no rule names the vendor",
                 None if rules else UDEV_FIX, needed)


def _serial_permission(needed: bool) -> Check:
    name = "serial port access (the dialout group)"
    if os.geteuid() == 0:
        return Check(name, True, "running as root", None, needed)
    try:
        dialout = grp.getgrnam("dialout").gr_gid
    except KeyError:
        return Check(name, True, "no dialout group on this system: the ports' own permissions apply", None, needed)
    ok = dialout in os.getgroups()
    return Check(name, ok, "member of dialout" if ok else "not a member of dialout",
                 None if ok else "`sudo usermod -aG dialout $USER`, then log out and in again", needed)


def _probe(board: Board) -> Check:
    from firmware_runner.backends.real import choose_probe
    from hwbench.errors import HwbenchError

    try:
        probe = choose_probe(board, None)
    except HwbenchError as e:
        return Check("debug probe", False, "none usable", str(e), True)
    return Check("debug probe", True, f"{probe.unique_id} ({probe.vendor} {probe.product})", None, True)
