"""Where candidates train: in a local process pool, or on a Ray cluster (as μNAS does).

An executor only runs `fn(*args)` and hands back a concurrent.futures.Future; every proposal and seed
is decided by the search before it submits, so the results are the same on any executor.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
from concurrent.futures import Future, ProcessPoolExecutor

from hwbench.errors import HwbenchError

RAY_DEFAULT_PORT = 6379  # the head node's GCS port when an address names none
CONNECT_TIMEOUT_S = 10  # Ray itself retries an unreachable address for minutes


class RayCluster:
    """Tasks on a Ray cluster, reached at `address` ("host:port", "ray://host:port" or "auto").

    Each node must have hwbench installed; what the tasks need beyond their arguments is `share`d."""

    def __init__(self, address: str):
        _check_reachable(address)
        try:
            import ray  # imported here only: it is big and slow to import
        except ImportError:
            raise HwbenchError("--ray needs the ray package (a dependency of hwbench): pip install ray") from None
        try:
            # The workers' TensorFlow chatter would scroll the progress display away.
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except ConnectionError as e:
            raise HwbenchError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
        self._ray = ray
        self._remote = {}

    def share(self, value):
        """One copy of `value` in the cluster's object store: passed to `submit`, each task gets the value."""
        return self._ray.put(value)

    def submit(self, fn, *args) -> Future:
        if fn not in self._remote:
            self._remote[fn] = self._ray.remote(num_cpus=1)(fn)
        return self._remote[fn].remote(*args).future()

    def shutdown(self) -> None:
        self._ray.shutdown()  # a driver leaving the cluster ends the tasks it left running


def _check_reachable(address: str) -> None:
    """Refuse an address nothing listens at within seconds ("auto" Ray resolves, and refuses, itself)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host:
        host, port = port, str(RAY_DEFAULT_PORT)
    if not port.isdigit():
        raise HwbenchError(f"bad Ray address {address!r}: give host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise HwbenchError(f"cannot reach the Ray cluster at {address!r}: {e.strerror or e}") from None


def local_executor(workers: int) -> ProcessPoolExecutor:
    """`workers` local processes (one for one worker too: every candidate trains the same way)."""
    # spawn, not fork: TensorFlow's threads do not survive a fork.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
