"""hwbench: benchmark int8 TinyML models on Cortex-M boards, learn their latency, search for models that fit."""

__version__ = "0.1.0"
