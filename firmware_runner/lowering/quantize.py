"""QUANTIZE (float32 to int8, int8 to int8) and DEQUANTIZE (int8 to float32)."""

LOWERINGS = {}
