"""hwbench.processes: real child processes (sh, sleep) in their own process groups."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hwbench.processes import Processes


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (zombies waiting for their parent count as gone), after
    giving a SIGKILL sent just before a moment to land."""
    deadline = time.monotonic() + 2
    while True:
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(stat.parent.name))
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.01)


def _family(pid_file: Path) -> str:
    """A shell that writes its pid (its process group's id) to `pid_file`, starts a grandchild and waits."""
    return f"echo $$ > {pid_file}; sleep 300 & wait"


def _group_of(pid_file: Path) -> int:
    deadline = time.monotonic() + 60  # a shell may take seconds to start on a loaded machine
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            return int(pid_file.read_text())
        time.sleep(0.01)
    raise AssertionError("the shell never started")


def test_a_child_that_exits_keeps_its_output_and_exit_code():
    done = Processes().run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30, output_limit=1000)
    assert (done.output, done.exit_code, done.killed) == (b"out\nerr\n", 3, None)


def test_a_timeout_kills_the_whole_group(tmp_path):
    pid_file = tmp_path / "pid"
    done = Processes().run(["sh", "-c", _family(pid_file)], timeout=1, output_limit=1000)
    assert done.killed == "no answer within 1 s" and done.exit_code is None
    assert _group_members(_group_of(pid_file)) == []  # the shell's `sleep` too


def test_output_past_the_limit_is_cut_and_the_group_killed(tmp_path):
    pid_file = tmp_path / "pid"
    done = Processes().run(["sh", "-c", f"echo $$ > {pid_file}; sleep 300 & yes"], timeout=60, output_limit=50_000)
    assert done.killed == "more than 50,000 bytes of output" and len(done.output) == 50_000
    assert _group_members(_group_of(pid_file)) == []


def test_stop_kills_the_running_children_from_another_thread_and_refuses_new_ones(tmp_path):
    processes = Processes()
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.update(
        {i: processes.run(["sh", "-c", _family(tmp_path / f"pid{i}")], timeout=300, output_limit=1000)}))
        for i in range(2)]
    for t in threads:
        t.start()
    groups = [_group_of(tmp_path / f"pid{i}") for i in range(2)]
    processes.stop()
    for t in threads:
        t.join(timeout=10)
    assert [results[i].killed for i in range(2)] == ["stopped", "stopped"]
    assert [_group_members(g) for g in groups] == [[], []]
    assert processes.run(["true"], timeout=10, output_limit=10).killed == "stopped"


def test_an_exception_while_waiting_kills_the_group(tmp_path):
    """Ctrl-C (SIGINT to the main thread, so KeyboardInterrupt) while it waits for a child."""
    pid_file = tmp_path / "pid"
    ctrl_c = lambda: (_group_of(pid_file), signal.pthread_kill(threading.main_thread().ident, signal.SIGINT))  # noqa: E731
    # Python's own Ctrl-C handler, even when the tests run with SIGINT ignored (under nohup, say).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.0, ctrl_c)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Processes().run(["sh", "-c", _family(pid_file)], timeout=300, output_limit=1000)
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert _group_members(_group_of(pid_file)) == []
    assert os.getpgrp() != _group_of(pid_file)  # it had a group of its own


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux's setpriv (Linux)")
def test_a_child_dies_with_its_owner_even_on_sigkill(tmp_path):
    """SIGKILL to the process that started the child: no handler runs, yet the child goes too."""
    pid_file = tmp_path / "pid"
    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, threading; from hwbench.processes import Processes; "
        "threading.Thread(target=Processes().run, args=(sys.argv[1:], 300, 1000)).start()"),
        "sh", "-c", f"echo $$ > {pid_file}; exec sleep 300"])
    child = _group_of(pid_file)
    owner.kill()
    owner.wait()
    left = _group_members(child)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
