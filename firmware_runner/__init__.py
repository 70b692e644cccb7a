"""Everything that puts a model on a board and measures it, in five parts, each importing only the
ones listed before it (and the core, `hwbench`):

- `compiler`: graph + execution order + arena layout -> the binary plan the runtime executes;
- `runtime`: the C runtime that executes plans (its sources, a host build called through ctypes,
  the reference-interpreter wrapper, and `verify`, which checks the two agree bit for bit);
- `firmware`: the benchmark firmware (C sources, its cross-build, the host side of its serial
  protocol);
- `backends`: the ways of reaching a board (QEMU for emulated boards);
- `collect`: the measure -> verify -> record loop shared by every backend.
"""
