"""The C inference runtime and its host side: the C99 plan interpreter (`hwb_runtime.c`) and one
kernel per operator (`kernels/`), the same sources the firmware runs, built for this machine and
called through ctypes (`host`), the TFLite reference interpreter it must match bit for bit
(`reference`), and `verify`, which runs both on the same inputs and reports the first difference.

May import: the core (`hwbench`) and `firmware_runner.compiler` (the plans it runs).
"""
