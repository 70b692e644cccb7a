"""Small Keras models converted to full-int8 TFLite, for per-operator tests of the runtime, and to
float, int16 and partly float TFLite, for what hwbench reads but does not run.

`int8_model(build, shapes)` calls `build(*keras_inputs)` for the outputs, sets seeded random
weights, calibrates on uniform inputs in `calibration` (a wide or lopsided range gives extreme
scales and zero points) and converts; `float_io=True` keeps float32 inputs and outputs, so the
model starts with QUANTIZE and ends with DEQUANTIZE. `keras_model` and `convert` are its two
halves; `convert` also makes the other kinds of model.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from hwbench.generate.build import _quiet_tensorflow, _stderr_captured
from firmware_runner.runtime.verify import Verification, verify_model

LENET_INPUT = (28, 28, 1)


def int8_model(build: Callable, shapes: Sequence[tuple[int, ...]], seed: int = 0, float_io: bool = False,
               calibration: tuple[float, float] = (-1.0, 1.0), weight_scale: float = 1.0, samples: int = 16) -> bytes:
    return convert(keras_model(build, shapes, seed, weight_scale), shapes, "int8", seed, float_io, calibration, samples)


def keras_model(build: Callable, shapes: Sequence[tuple[int, ...]], seed: int = 0, weight_scale: float = 1.0):
    """The Keras model of `build(*inputs)` (batch 1) with seeded random weights (biases too, so the
    converter keeps them)."""
    _quiet_tensorflow()
    import keras

    rng = np.random.default_rng(seed)
    inputs = [keras.Input(shape=s, batch_size=1, name=f"in{i}") for i, s in enumerate(shapes)]
    model = keras.Model(inputs, build(*inputs))
    for layer in model.layers:
        layer.set_weights([rng.normal(0.0, weight_scale / np.sqrt(max(w.size // max(w.shape[-1], 1), 1)), w.shape)
                           .astype(np.float32) for w in layer.get_weights()])
    return model


def convert(model, shapes: Sequence[tuple[int, ...]], mode: str = "int8", seed: int = 0, float_io: bool = False,
            calibration: tuple[float, float] = (-1.0, 1.0), samples: int = 16, float_ops: Sequence[str] = ()) -> bytes:
    """`.tflite` bytes of a Keras model. `mode`: "int8" (full integer), "int16" (the converter's 16x8
    mode: int16 activations, int8 weights, int64 biases) or "float" (no quantization); the integer
    modes have integer inputs and outputs unless `float_io`, and leave the `float_ops` (TFLite op
    names) in float32 after a DEQUANTIZE."""
    tf = _quiet_tensorflow()
    rng = np.random.default_rng(seed)
    specs = [tf.TensorSpec((1, *s), tf.float32) for s in shapes]
    function = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False), input_signature=specs)
    lo, hi = calibration
    data = [[rng.uniform(lo, hi, size=(1, *s)).astype(np.float32) for s in shapes] for _ in range(samples)]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    if mode != "float":
        integer = {"int8": (tf.int8, tf.lite.OpsSet.TFLITE_BUILTINS_INT8),
                   "int16": (tf.int16, tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8)}
        dtype, ops = integer[mode]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(data)
        converter.target_spec.supported_ops = [ops, tf.lite.OpsSet.TFLITE_BUILTINS] if float_ops else [ops]
        if not float_io:
            converter.inference_input_type = converter.inference_output_type = dtype
    with _stderr_captured():
        if not float_ops:
            return converter.convert()
        # The quantization debugger is the converter's way of leaving chosen ops unquantized.
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
        debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=lambda: iter(data),
                                                             debug_options=options)
        return debugger.get_nondebug_quantized_model()


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
    """One model with float32 input and output through every operator the runtime runs: QUANTIZE
    (float and int8 input), PAD, CONV_2D, TRANSPOSE, CONCATENATION, LOGISTIC, TANH, MUL, SUB,
    LEAKY_RELU, HARD_SWISH, RESIZE_NEAREST_NEIGHBOR, ADD, DEPTHWISE_CONV_2D, MAX_POOL_2D, RELU6,
    AVERAGE_POOL_2D, RESHAPE, SOFTMAX, MEAN, RELU, FULLY_CONNECTED, LOG_SOFTMAX, DEQUANTIZE.
    SQUEEZE is the one missing: today's converter writes every squeeze as a RESHAPE (here, of the
    1x1 pooled map to a vector)."""
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
        s = L.ReLU(max_value=6.0)(L.Add()([r, r]))  # fused into the ADD
        t = L.Permute((2, 1, 3))(L.DepthwiseConv2D(3, padding="same")(s))
        # ReLU6 and ReLU after ops that cannot take them fused: standalone RELU6 and RELU.
        u = L.ReLU(max_value=6.0)(L.ZeroPadding2D(1)(L.MaxPooling2D(2)(t)))
        # MobileNet v1's classifier: a 1x1 convolution of the pooled 1x1 map, reshaped to a vector.
        probabilities = L.Softmax()(L.Reshape((5,))(L.Conv2D(5, 1)(L.AveragePooling2D(6)(u))))
        logits = L.Dense(3)(L.ReLU()(L.GlobalAveragePooling2D()(t)))
        log_probabilities = L.Lambda(lambda v: tf.nn.log_softmax(v))(logits)
        return L.Concatenate()([probabilities, log_probabilities])

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


def mcunet_style_model(seed: int = 0) -> bytes:
    """A stand-in for an MCUNet model-zoo network (its .tflite files are downloaded at run time, not
    shipped): a stride-2 stem, two MBConv blocks (1x1 expand, depthwise 3x3, 1x1 project, ReLU6,
    one with a residual ADD), then global pooling as MCUNet's ProxylessNASNets writes it in PyTorch,
    `x.mean(3).mean(2)`: in NHWC, a MEAN over the width and then one over the height, and a
    classifier; full int8 with float input and output, as the zoo's files are converted."""
    import keras

    L = keras.layers

    def mbconv(x, expand: int, out: int, stride: int):
        y = L.ReLU(6.0)(L.Conv2D(x.shape[-1] * expand, 1)(x))
        y = L.ReLU(6.0)(L.DepthwiseConv2D(3, strides=stride, padding="same")(y))
        y = L.Conv2D(out, 1)(y)
        return L.Add()([x, y]) if stride == 1 and out == x.shape[-1] else y

    def build(x):
        x = L.ReLU(6.0)(L.Conv2D(8, 3, strides=2, padding="same")(x))
        x = mbconv(mbconv(x, 3, 8, 1), 4, 16, 2)
        return L.Dense(10)(keras.ops.mean(keras.ops.mean(x, axis=2), axis=1))

    return int8_model(build, [(24, 24, 3)], seed=seed, float_io=True)


def lenet(head: str = "softmax", seed: int = 0):
    """LeNet-5 on 28x28x1 MNIST images (conv 6@5x5, max-pool, conv 16@5x5, max-pool, dense 120, 84,
    10) ending in the activation `head` ("softmax" or "log_softmax"), seeded random weights."""
    import keras

    L = keras.layers

    def build(x):
        x = L.MaxPooling2D()(L.Conv2D(6, 5, activation="relu")(x))
        x = L.MaxPooling2D()(L.Conv2D(16, 5, activation="relu")(x))
        x = L.Dense(84, activation="relu")(L.Dense(120, activation="relu")(L.Flatten()(x)))
        return L.Activation(head)(L.Dense(10)(x))

    return keras_model(build, [LENET_INPUT], seed=seed)

