"""The op and kernel-path codes of the plan format, read from the runtime's own lists
(runtime/hwb_ops.h: HWB_OPS and HWB_PATHS), so the compiler never keeps a copy of its own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

OPS_HEADER = Path(__file__).resolve().parents[1] / "runtime" / "hwb_ops.h"


@dataclass(frozen=True)
class OpKernel:
    code: int
    check: str  # the C functions hwb_load and hwb_invoke call, e.g. "hwb_conv2d_s8_check"
    run: str


@cache
def op_kernels() -> dict[str, OpKernel]:
    """Kernel name -> its code and C functions."""
    entries = re.findall(r"X\((\d+), (\w+), (\w+), (\w+)\)", OPS_HEADER.read_text())
    return {name: OpKernel(int(code), check, run) for code, name, check, run in entries}


def op_codes() -> dict[str, int]:
    """Kernel name -> op code."""
    return {name: kernel.code for name, kernel in op_kernels().items()}


@cache
def path_codes() -> dict[str, int]:
    """Kernel path name (hwbench.kernel_paths) -> the code a kernel's parameter struct carries."""
    paths = OPS_HEADER.read_text().split("#define HWB_PATHS(X)")[1].split("\n\n")[0]
    return {name: int(code) for code, name in re.findall(r"X\((\d+), (\w+)\)", paths)}
