"""A model as C: its plan as a `const` array (`c_array`, which `hwbench search` writes as best.c), and
`export_model`, the folder `hwbench export` writes for a user's own firmware (a Makefile project,
STM32CubeIDE, Zephyr):

    model.h, model.c    the model's API, its plan in flash and its kernel table
    hwb_*.c, hwb_*.h    the interpreter
    kernels/            only the kernels the plan uses, and what they include
    README.md           how to build it in, and what was measured

The runtime files are copied byte for byte from the runtime a board measures (the header records its
runtime hash); only the kernel table is the model's own: the runtime's hwb_kernels.c lists every kernel,
the export's lists those of its model, so that only their sources are needed.

    #include "model.h"
    static uint8_t memory[MODEL_MEMORY_SIZE] __attribute__((aligned(16)));
    hwb_context ctx;
    model_init(&ctx, memory);   fill model_input(&ctx, 0);   model_invoke(&ctx);   read model_output(&ctx, 0)

The plan is the runtime's own format (hwb_runtime.h): weights, op records and the arena layout the
planner chose, so the arena size is exactly what `hwbench analyze` reports; the memory the caller
provides holds the table the runtime decodes the plan into at load, then that arena.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from hwbench.boards import Board
from hwbench.kernel_paths import fast_paths_for
from hwbench.errors import HwbenchError
from hwbench.graph import Graph
from hwbench.runtime_hash import runtime_hash
from hwbench.tflite_reader import read_tflite
from firmware_runner.compiler.codes import op_kernels
from firmware_runner.compiler.plan import Plan, compile_plan

BYTES_PER_LINE = 16
ALIGNMENT = 16  # the runtime reads the plan's sections in place: keep it aligned
RUNTIME_DIR = Path(__file__).resolve().parent
INTERPRETER = ("hwb_runtime.c", "hwb_runtime.h", "hwb_ops.h", "hwb_quant.h")
C_TYPES = {"int8": "int8_t", "int32": "int32_t", "float32": "float"}


def c_array(plan: Plan, name: str = "model") -> tuple[str, str]:
    """(header, source) defining `<name>_plan` and the sizes `<NAME>_PLAN_SIZE`, `<NAME>_ARENA_SIZE` and
    `<NAME>_MEMORY_SIZE` (the memory hwb_load needs: the runtime's table of the plan, then the arena)."""
    _check_identifier(name)
    return _header(name, "the plan of one model for the hwbench runtime", '#include "hwb_runtime.h"',
                   _plan_macros(plan, name) + f"\nextern const uint8_t {name}_plan[{name.upper()}_PLAN_SIZE];\n"), \
        f'#include "{name}.h"\n\n{_plan_definition(plan, name)}'


def export_model(model: str | Path, board: Board, out_dir: str | Path, build_flags: Sequence[str],
                 name: str = "model") -> dict:
    """Write `model`'s export for `board` into `out_dir` (new or empty). `build_flags`: the compiler
    flags the board's benchmark firmware builds the runtime with (the README repeats them). Returns a
    JSON-ready summary: folder, files, kernels, plan and arena bytes, runtime hash."""
    _check_identifier(name)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HwbenchError(f"{out}: exists and is not an empty folder; export into a new or empty one")
    graph = read_tflite(model)
    plan = compile_plan(graph, fast=fast_paths_for(board))  # the kernel paths `collect` measures on the board
    _check_fits(plan, board, Path(model).name)
    kernels = sorted({op.kernel for op in plan.ops})
    sources = runtime_files(kernels)
    files = {path.relative_to(RUNTIME_DIR).as_posix(): path.read_bytes() for path in sources}
    files[f"{name}.h"] = _api_header(graph, plan, name, board).encode()
    files[f"{name}.c"] = _api_source(plan, name, kernels).encode()
    files["README.md"] = _readme(Path(model).name, plan, name, board, kernels, build_flags).encode()
    out.mkdir(parents=True, exist_ok=True)
    for relative, data in files.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(data)
    return {"out": str(out), "files": sorted(files), "kernels": kernels, "plan_bytes": len(plan.blob),
            "arena_bytes": plan.arena_size, "runtime_hash": runtime_hash(board), "board": board.name}


def runtime_files(kernels: Sequence[str]) -> list[Path]:
    """The runtime sources an application running `kernels` (plan kernel names) needs: the
    interpreter, each kernel's file, and the helper files and headers those use."""
    defined = {path: set(re.findall(r"^(?!static)[a-z][\w ]*?\b(hwb_\w+)\(", path.read_text(), re.M))
               for path in sorted((RUNTIME_DIR / "kernels").glob("*.c"))}
    wanted = [op_kernels()[k] for k in kernels]
    chosen = {path for path, functions in defined.items() if any(k.run in functions for k in wanted)}
    files = {RUNTIME_DIR / f for f in INTERPRETER}
    while chosen - files:  # add what the chosen files include and the helper functions they call
        files |= chosen
        text = "".join(path.read_text() for path in chosen)
        chosen |= {path.parent / include for path in chosen
                   for include in re.findall(r'^#include "(\w+\.h)"', path.read_text(), re.M)}
        chosen |= {path for path, functions in defined.items() if any(re.search(rf"\b{f}\(", text) for f in functions)}
    return sorted(files)


def _check_identifier(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise HwbenchError(f"{name!r} is not a C identifier: choose a name of letters, digits and underscores")


def _check_fits(plan: Plan, board: Board, model: str) -> None:
    if plan.arena_size > board.sram.size:
        raise HwbenchError(f"{model}: its arena of {plan.arena_size:,} B does not fit {board.name}'s "
                           f"{board.sram.size:,} B of SRAM")
    if len(plan.blob) > board.flash.size:
        raise HwbenchError(f"{model}: its plan of {len(plan.blob):,} B does not fit {board.name}'s "
                           f"{board.flash.size:,} B of flash")


def _header(name: str, what: str, includes: str, body: str) -> str:
    upper = name.upper()
    return (f"/* Generated by hwbench: {what}. */\n#ifndef {upper}_H\n#define {upper}_H\n\n{includes}\n\n{body}"
            f"\n#endif\n")


def _plan_macros(plan: Plan, name: str) -> str:
    upper = name.upper()
    return (f"#define {upper}_PLAN_SIZE {len(plan.blob)}u\n#define {upper}_ARENA_SIZE {plan.arena_size}u\n"
            f"#define {upper}_MEMORY_SIZE HWB_MEMORY_SIZE({upper}_ARENA_SIZE, {len(plan.ops)}u, "
            f"{sum(op.operands for op in plan.ops)}u)\n")


def _plan_definition(plan: Plan, name: str) -> str:
    lines = [", ".join(f"0x{b:02x}" for b in plan.blob[i:i + BYTES_PER_LINE])
             for i in range(0, len(plan.blob), BYTES_PER_LINE)]
    return (f"const uint8_t {name}_plan[{name.upper()}_PLAN_SIZE] __attribute__((aligned({ALIGNMENT}))) = {{\n    "
            + ",\n    ".join(lines) + "\n};\n")


def _io_macros(graph: Graph, name: str, which: str, tensors: Sequence[int]) -> str:
    """Count, then per tensor its byte size, element type, dims and quantization."""
    upper, kind = name.upper(), which.upper()
    lines = [f"#define {upper}_{kind}_COUNT {len(tensors)}u"]
    for i, index in enumerate(tensors):
        t = graph.tensors[index]
        q = t.quantization
        scale = f"{np.float32(q.scale[0]).item():.9g}f" if q is not None else "0.0f"
        prefix = f"{upper}_{kind}{i}"
        lines += [f"/* {which} {i}: {C_TYPES[t.dtype]} [{', '.join(map(str, t.shape))}] ({t.name}) */",
                  f"#define {prefix}_BYTES {t.nbytes}u", f"#define {prefix}_TYPE HWB_{t.dtype.upper()}",
                  f"#define {prefix}_SCALE {scale}",
                  f"#define {prefix}_ZERO_POINT {int(q.zero_point[0]) if q is not None else 0}"]
    return "\n".join(lines) + "\n"


def _api_header(graph: Graph, plan: Plan, name: str, board: Board) -> str:
    upper = name.upper()
    body = (f"/* The runtime these sources are (hwbench's runtime hash) and the board it was measured on. */\n"
            f'#define {upper}_RUNTIME_HASH "{runtime_hash(board)}"\n#define {upper}_BOARD "{board.name}"\n\n'
            f"/* The plan (in flash), and the memory the caller provides: the table the runtime decodes the\n"
            f" * plan into, then the arena (activations and kernel scratch at the offsets the arena planner\n"
            f" * chose). {upper}_ARENA_SIZE is the arena `hwbench analyze` reports. */\n"
            + _plan_macros(plan, name) + f"#define {upper}_MEMORY_ALIGNMENT {ALIGNMENT}u\n"
            f"extern const uint8_t {name}_plan[{upper}_PLAN_SIZE];\n\n"
            f"/* Inputs and outputs: real value = scale * (q - zero_point). */\n"
            + _io_macros(graph, name, "input", plan.inputs) + _io_macros(graph, name, "output", plan.outputs) +
            f"\n/* Checks the plan once and lays it out in `memory` ({upper}_MEMORY_SIZE bytes, {ALIGNMENT}-byte\n"
            f" * aligned). */\n"
            f"hwb_status {name}_init(hwb_context *ctx, void *memory);\n"
            f"/* Runs every op on what the inputs hold. */\n"
            f"hwb_status {name}_invoke(const hwb_context *ctx);\n"
            f"/* The index-th input or output in the arena ({upper}_INPUT<i>_BYTES bytes; NULL for no such one).\n"
            f" * An input may share memory with later activations: fill it before every invoke. */\n"
            f"void *{name}_input(const hwb_context *ctx, uint32_t index);\n"
            f"void *{name}_output(const hwb_context *ctx, uint32_t index);\n")
    return _header(name, f"the model {graph.name or name} for the hwbench runtime", '#include "hwb_runtime.h"', body)


def _api_source(plan: Plan, name: str, kernels: Sequence[str]) -> str:
    upper = name.upper()
    table = "".join(f"    [HWB_OP_{k}] = {{{op_kernels()[k].check}, {op_kernels()[k].run}}},\n" for k in kernels)
    return (f'#include "{name}.h"\n\n#include "hwb_ops.h"\n\n{_plan_definition(plan, name)}\n'
            f"/* The kernel table (in place of the runtime's hwb_kernels.c): only the kernels this plan uses. */\n"
            f"const hwb_kernel hwb_kernels[HWB_OP_END] = {{\n{table}}};\n\n"
            f"hwb_status {name}_init(hwb_context *ctx, void *memory) {{\n"
            f"    return hwb_load(ctx, {name}_plan, {upper}_PLAN_SIZE, memory, {upper}_MEMORY_SIZE);\n}}\n\n"
            f"hwb_status {name}_invoke(const hwb_context *ctx) {{ return hwb_invoke(ctx); }}\n\n"
            f"static void *io(const hwb_context *ctx, int which, uint32_t index) {{\n"
            f"    hwb_tensor t;\n    return hwb_io(ctx, which, index, &t) == HWB_OK ? t.data : 0;\n}}\n\n"
            f"void *{name}_input(const hwb_context *ctx, uint32_t index) {{ return io(ctx, HWB_INPUT, index); }}\n\n"
            f"void *{name}_output(const hwb_context *ctx, uint32_t index) {{ return io(ctx, HWB_OUTPUT, index); }}\n")


def _readme(model: str, plan: Plan, name: str, board: Board, kernels: Sequence[str], flags: Sequence[str]) -> str:
    upper = name.upper()
    return f"""# {model} for the hwbench runtime

Exported by `hwbench export` for {board.name} ({board.core}): runtime hash `{runtime_hash(board)}` (also
`{upper}_RUNTIME_HASH` in `{name}.h`), the runtime whose instruction or cycle counts hwbench measured
on that board. The files other than `{name}.h`, `{name}.c` and this README are its sources, unchanged.

- plan: {len(plan.blob):,} B, `const` in `{name}.c` (flash)
- arena: {plan.arena_size:,} B (`{upper}_ARENA_SIZE`, what `hwbench analyze` reports); the memory you
  provide, `{upper}_MEMORY_SIZE` bytes ({ALIGNMENT}-byte aligned), holds the table the runtime decodes the
  plan into (its {len(plan.ops)} ops and their {sum(op.operands for op in plan.ops)} operands), then the arena
- kernels: {", ".join(kernels)} (only these are included)

## Build

Compile every `.c` file here (`*.c kernels/*.c`) with this folder on the include path, as C99 or
later; link with `-lm`. hwbench measured them built with

    {" ".join(flags)}

No dynamic allocation, no global state: everything is in the `hwb_context` and the memory.

## Use

```c
#include "{name}.h"

static uint8_t memory[{upper}_MEMORY_SIZE] __attribute__((aligned({ALIGNMENT})));

hwb_context ctx;
if ({name}_init(&ctx, memory) != HWB_OK) {{ /* the plan or the memory was refused */ }}
int8_t *input = {name}_input(&ctx, 0);   /* {upper}_INPUT0_BYTES bytes; quantization in {name}.h */
/* ... fill input ... */
if ({name}_invoke(&ctx) != HWB_OK) {{ /* ... */ }}
const int8_t *output = {name}_output(&ctx, 0);
```

`{name}_init` checks the whole plan once (sizes, CRC, every op's operands and parameters) and refuses a
bad one with a status code (`hwb_status_name` names it); `{name}_invoke` then checks nothing again.
"""
