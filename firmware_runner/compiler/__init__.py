"""The plan compiler: graph + execution order + arena layout -> the binary plan the C runtime
executes (`plan`), TFLite's requantization arithmetic (`quantization`), and one lowering module
per operator family (`lowering/`) that turns an op into its kernel's parameter record.

May import: the core (`hwbench`). It reads the runtime's op list (runtime/hwb_ops.h) as a file,
the one source of op codes, and imports no runtime code.
"""
