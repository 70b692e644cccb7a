"""Small Keras models converted to full-int8 TFLite, for per-operator tests of the runtime.

`int8_model(build, shapes)` calls `build(*keras_inputs)` for the outputs, sets seeded random
weights, calibrates on uniform inputs in `calibration` (a wide or lopsided range gives extreme
scales and zero points) and converts; `float_io=True` keeps float32 inputs and outputs, so the
model starts with QUANTIZE and ends with DEQUANTIZE.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from hwbench.generate.build import _quiet_tensorflow, _stderr_captured
from firmware_runner.runtime.verify import Verification, verify_model


def int8_model(build: Callable, shapes: Sequence[tuple[int, ...]], seed: int = 0, float_io: bool = False,
               calibration: tuple[float, float] = (-1.0, 1.0), weight_scale: float = 1.0, samples: int = 16) -> bytes:
    tf = _quiet_tensorflow()
    import keras

    rng = np.random.default_rng(seed)
    inputs = [keras.Input(shape=s, batch_size=1, name=f"in{i}") for i, s in enumerate(shapes)]
    model = keras.Model(inputs, build(*inputs))
    for layer in model.layers:
        layer.set_weights([rng.normal(0.0, weight_scale / np.sqrt(max(w.size // max(w.shape[-1], 1), 1)), w.shape)
                           .astype(np.float32) for w in layer.get_weights()])
    specs = [tf.TensorSpec((1, *s), tf.float32) for s in shapes]
    function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False), input_signature=specs)
    lo, hi = calibration
    data = [[rng.uniform(lo, hi, size=(1, *s)).astype(np.float32) for s in shapes] for _ in range(samples)]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _stderr_captured():
        return converter.convert()


def assert_bit_exact(model: bytes, samples: int = 3, seed: int = 0, fast: bool = True) -> Verification:
    """The model through the host runtime, on its kernels' fast paths or (fast=False) the reference
    paths, equals TFLite's reference on random inputs."""
    result = verify_model(model, samples=samples, seed=seed, fast=fast)
    assert result.matched, f"runtime differs from TFLite: {result.difference}"
    return result


def op_types(model: bytes) -> set[str]:
    from hwbench.tflite_reader import parse_tflite

    return set(parse_tflite(model).op_counts())


def mixed_operator_model(seed: int = 0) -> bytes:
    """One model with float32 input and output through most of the ops the generator does not make:
    QUANTIZE, PAD, TRANSPOSE, CONCATENATION, LOGISTIC, TANH, MUL, SUB, LEAKY_RELU, HARD_SWISH,
    RESIZE_NEAREST_NEIGHBOR, ADD, DEQUANTIZE."""
    import keras
    import tensorflow as tf

    L = keras.layers

    def build(a, b):
        x = L.Conv2D(4, 2)(L.ZeroPadding2D(((1, 0), (0, 1)))(a))
        y = L.Conv2D(4, 1)(L.Permute((2, 1, 3))(b))
        z = L.Concatenate()([x, y])
        m = L.Multiply()([L.Activation("sigmoid")(z), L.Activation("tanh")(z)])
        h = L.Activation("hard_swish")(L.Subtract()([m, L.LeakyReLU(negative_slope=0.2)(z)]))
        r = L.Lambda(lambda v: tf.image.resize(v, (8, 8), method="nearest"))(h)
        return L.ReLU(max_value=6.0)(L.Add()([r, r]))

    return int8_model(build, [(6, 6, 2), (6, 6, 2)], seed=seed, float_io=True)


def with_params(blob: bytes, step: int, field: int, value: int) -> bytes:
    """The plan with int32 `field` of the step-th op's parameter struct set to `value`, CRC redone:
    a damaged plan that reaches the kernel's own checks."""
    import struct
    import zlib

    from firmware_runner.compiler.plan import HEADER, OP

    out = bytearray(blob)
    ops_at = HEADER.unpack_from(out)[11]
    params_at, params_size = OP.unpack_from(out, ops_at + step * OP.size)[6:8]
    assert 4 * field < params_size
    struct.pack_into("<i", out, params_at + 4 * field, value)
    struct.pack_into("<I", out, 12, zlib.crc32(out[16:]))
    return bytes(out)
