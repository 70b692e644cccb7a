"""hwbench: benchmark int8 TinyML models on Cortex-M boards, learn their latency, search for models that fit.

This package is the core every other one builds on (graph IR, .tflite reader, boards, memory
scheduling, costs, generator, results DB, runtime hash) and the CLI. It imports none of
`firmware_runner`, `latency_models` or `nas`; only the CLI's commands do, inside themselves.
"""

__version__ = "0.1.0"
