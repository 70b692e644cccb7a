"""Lowering: one graph op to one plan op, per family of operators (one module each)."""

from __future__ import annotations

from firmware_runner.compiler.lowering import activations, conv, elementwise, exponential, pooling, quantize, shape
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, pack

LOWERINGS = {**conv.LOWERINGS, **elementwise.LOWERINGS, **pooling.LOWERINGS, **shape.LOWERINGS,
             **exponential.LOWERINGS, **activations.LOWERINGS, **quantize.LOWERINGS}

__all__ = ["LOWERINGS", "Lowered", "Unsupported", "pack"]
