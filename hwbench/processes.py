"""Child processes that never outlive their purpose (emulators above all).

Each one runs in its own process group, so the terminal's Ctrl-C reaches hwbench alone, which
decides; the group is killed, with anything the child started, on a timeout, past an output limit,
on any exception in the thread waiting for it, and when its owner stops them all (a collection
does on Ctrl-C, and on SIGTERM and SIGHUP, which the CLI turns into exceptions). A child that exits
on its own is never signalled, so its exit code is its own. Where util-linux's `setpriv` is
installed (Linux), the child also gets SIGKILL when the thread that started it dies, so that even a
SIGKILL to hwbench, which nothing can catch, leaves no emulator behind (one whose output pipe has
closed spins on its UART for ever).
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Sequence


# The thread that starts a child waits for it, so "when that thread dies" means "when hwbench dies".
_DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--") if shutil.which("setpriv") else ()


@dataclass(frozen=True)
class Finished:
    output: bytes  # stdout and stderr together, cut at the output limit
    exit_code: int | None  # None when it was killed
    killed: str | None  # why it was killed, in words ("no answer within 20 s"); None when it exited
    seconds: float


class Processes:
    """Runs commands, from any number of threads, and can stop all of them at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._stopped = False

    def run(self, command: Sequence[str], timeout: float, output_limit: int) -> Finished:
        """Run `command` to its end, within `timeout` seconds and `output_limit` bytes of output."""
        start = time.monotonic()
        process = None
        try:  # from the moment the child exists: an exception (Ctrl-C) anywhere after it must kill it
            with self._lock:  # no child can start unseen by a concurrent stop()
                if self._stopped:
                    return Finished(b"", None, "stopped", 0.0)
                process = subprocess.Popen([*_DIE_WITH_PARENT, *command], stdin=subprocess.DEVNULL,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0)
                self._running.add(process)
            output, killed = _read_until_exit(process, start + timeout, output_limit)
        finally:
            if process is not None:
                if process.returncode is None:  # over time or output, or an exception here
                    _kill_group(process)
                process.wait()
                process.stdout.close()
                with self._lock:
                    self._running.discard(process)
        if killed == "timeout":
            killed = f"no answer within {timeout:g} s"
        elif killed == "output":
            killed = f"more than {output_limit:,} bytes of output"
        elif self._stopped and process.returncode == -signal.SIGKILL:
            killed = "stopped"
        return Finished(output, None if killed else process.returncode, killed, time.monotonic() - start)

    def stop(self) -> None:
        """Kill every child running now and refuse to start more."""
        with self._lock:
            self._stopped = True
            for process in self._running:
                if process.returncode is None:
                    _kill_group(process)


def _read_until_exit(process: subprocess.Popen, deadline: float, limit: int) -> tuple[bytes, str | None]:
    """What the child prints until it exits; or, if it must be killed, what it printed so far and
    why ("timeout" or "output")."""
    chunks, size = [], 0
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return b"".join(chunks), "timeout"
            if not selector.select(left):
                continue
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            if not chunk:  # end of output: the child closed it, normally by exiting
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks)[:limit], "output"
    try:
        process.wait(max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        return b"".join(chunks), "timeout"
    return b"".join(chunks), None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # already gone
        pass
