"""The benchmark firmware: start-up, one board-support file per board family, the benchmark loop
and the serial protocol in C (`*.c`, `link.ld.in`), its cross-build with arm-none-eabi-gcc
(`build`), and the host side of the protocol (`protocol`: the run header, the inputs the firmware
generates, and the parser of what it prints).

May import: the core (`hwbench`) and `firmware_runner.runtime` (its sources and C build).
"""
