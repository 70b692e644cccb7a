"""The runtime built for this machine and called through ctypes: the same C sources the firmware
runs, so a model can be checked on the host before it goes to a board.

The shared library is built on first use with the system C compiler and cached under
$HWBENCH_CACHE_DIR (default ~/.cache/hwbench), keyed by a hash of the sources and flags.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Sequence

import numpy as np

from hwbench.errors import HwbenchError, PlanError
from firmware_runner.compiler.plan import Plan, blob_arena_size

CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-fPIC")
SANITIZE_FLAGS = ("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
HWB_INPUT, HWB_OUTPUT = 0, 1
RUNTIME_DIR = Path(__file__).resolve().parent


def runtime_sources() -> list[Path]:
    return [RUNTIME_DIR / "hwb_runtime.c", RUNTIME_DIR / "hwb_kernels.c",
            *sorted((RUNTIME_DIR / "kernels").glob("*.c"))]


def cache_dir() -> Path:
    return Path(os.environ.get("HWBENCH_CACHE_DIR") or Path.home() / ".cache" / "hwbench")


def c_compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise HwbenchError("no C compiler found to build the host runtime: install gcc (make setup does) or set CC")
    return cc


def compile_c(output: Path, sources: Sequence[Path], flags: Sequence[str], cc: str | None = None) -> Path:
    """Compile and link `sources` into `output` (written atomically); the compiler's own message
    becomes the error."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        target = Path(tmp) / output.name
        cmd = [cc or c_compiler(), *flags, "-I", str(RUNTIME_DIR), *map(str, sources), "-o", str(target), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise HwbenchError(f"building {output.name} failed:\n{done.stderr.strip()}")
        os.replace(target, output)
    return output


def build_host_library(extra_flags: Sequence[str] = ()) -> Path:
    """The runtime as a shared library, built once per source version and cached."""
    flags = (*CFLAGS, "-shared", *extra_flags)
    digest = hashlib.sha256(" ".join(flags).encode())
    for source in [*runtime_sources(), *sorted(RUNTIME_DIR.rglob("*.h"))]:
        digest.update(source.name.encode() + source.read_bytes())
    library = cache_dir() / "host-runtime" / digest.hexdigest()[:16] / "libhwbench_runtime.so"
    return library if library.exists() else compile_c(library, runtime_sources(), flags)


class _Tensor(ctypes.Structure):  # hwb_tensor
    _fields_ = [("dims", ctypes.c_int32 * 4), ("rank", ctypes.c_int32), ("dtype", ctypes.c_int32),
                ("zero_point", ctypes.c_int32), ("scale", ctypes.c_float), ("nbytes", ctypes.c_uint32),
                ("data", ctypes.c_void_p)]


class _Context(ctypes.Structure):  # hwb_context; the runtime fills it in hwb_load
    _fields_ = [("plan", ctypes.c_void_p), ("arena", ctypes.c_void_p), ("table", ctypes.c_void_p),
                ("tensors", ctypes.c_void_p), ("ops", ctypes.c_void_p), ("io", ctypes.c_void_p),
                ("plan_size", ctypes.c_uint32), ("arena_size", ctypes.c_uint32), ("tensor_count", ctypes.c_uint32),
                ("op_count", ctypes.c_uint32), ("input_count", ctypes.c_uint32), ("output_count", ctypes.c_uint32)]


@cache
def host_library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_host_library()))
    lib.hwb_load.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32]
    lib.hwb_invoke_op.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.hwb_invoke.argtypes = [ctypes.c_void_p]
    lib.hwb_io.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.POINTER(_Tensor)]
    lib.hwb_status_name.restype = ctypes.c_char_p
    lib.hwb_crc32.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
    lib.hwb_crc32.restype = ctypes.c_uint32
    lib.hwb_memory_size.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32)]
    return lib


def _aligned(nbytes: int, alignment: int = 16) -> np.ndarray:
    raw = np.zeros(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes]


class HostRuntime:
    """One plan loaded into the host build of the runtime, with its own memory: the table the runtime
    decodes the plan into, then an arena of `arena_size` bytes (default: the plan's)."""

    def __init__(self, plan: Plan | bytes, arena_size: int | None = None):
        self.plan = plan if isinstance(plan, Plan) else None
        blob = plan.blob if isinstance(plan, Plan) else bytes(plan)
        self.lib = host_library()
        self._blob = _aligned(len(blob))
        self._blob[:] = np.frombuffer(blob, np.uint8)
        arena = arena_size if arena_size is not None else (plan.arena_size if self.plan else 1 << 20)
        needed = ctypes.c_uint32(0)  # (a plan it refuses gets no table: hwb_load says why)
        table = needed.value - blob_arena_size(blob) if self.lib.hwb_memory_size(
            self._blob.ctypes.data, len(blob), ctypes.byref(needed)) == 0 else 0
        self.memory = _aligned(max(table + arena, 1))
        self._ctx = _Context()
        assert ctypes.sizeof(_Context) == self.lib.hwb_context_size(), "hwb_context and _Context disagree"
        status = self.lib.hwb_load(ctypes.byref(self._ctx), self._blob.ctypes.data, len(blob),
                                   self.memory.ctypes.data, table + arena)
        self.check(status, "the runtime refused the plan")
        self.arena = self.memory[table:]

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise PlanError(f"{what}: {self.lib.hwb_status_name(status).decode()} (status {status})")

    def io(self, which: int, index: int) -> np.ndarray:
        """A view of the index-th input or output tensor's bytes in the arena, typed and shaped."""
        t = _Tensor()
        status = self.lib.hwb_io(ctypes.byref(self._ctx), which, index, ctypes.byref(t))
        self.check(status, f"the plan has no {['input', 'output'][which]} {index}")
        dtype = {1: np.int8, 2: np.int32, 3: np.float32}[t.dtype]
        start = t.data - self.arena.ctypes.data
        return self.arena[start:start + t.nbytes].view(dtype).reshape(tuple(t.dims[:t.rank]))

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        for i, x in enumerate(inputs):
            view = self.io(HWB_INPUT, i)
            view[...] = np.asarray(x, dtype=view.dtype).reshape(view.shape)

    def outputs(self) -> list[np.ndarray]:
        return [self.io(HWB_OUTPUT, i).copy() for i in range(self._ctx.output_count)]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model's outputs for `inputs` (graph input order)."""
        self.set_inputs(inputs)
        self.invoke()
        return self.outputs()

    def invoke(self) -> None:
        """Run every op on whatever the inputs hold."""
        self.check(self.lib.hwb_invoke(ctypes.byref(self._ctx)), "the runtime failed")

    def run_layers(self, inputs: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[dict[int, np.ndarray]]]:
        """The outputs, and every op's output tensors as it wrote them (graph tensor index -> array),
        copied right after the op ran: later ops may reuse its memory."""
        assert self.plan is not None, "run_layers needs the Plan object, not bare bytes"
        self.set_inputs(inputs)
        layers = []
        for i, op in enumerate(self.plan.ops):
            status = self.lib.hwb_invoke_op(ctypes.byref(self._ctx), i)
            self.check(status, f"operator {op.graph_index} ({op.type}) failed")
            layers.append({t: self.tensor(t) for t in op.outputs})
        return self.outputs(), layers

    def tensor(self, graph_index: int) -> np.ndarray:
        place = self.plan.places[graph_index]
        raw = self.arena[place.offset:place.offset + place.nbytes]
        return raw.view(place.dtype).reshape(place.shape).copy()
