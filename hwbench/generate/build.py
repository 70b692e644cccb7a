"""Builds an architecture description (see space.py) as a Keras model with seeded random weights and
converts it to a full-int8 `.tflite` flatbuffer.

Determinism: weights and calibration data come from the given numpy generator, and every layer has
an explicit name, so the bytes do not depend on what else the process built before.
TensorFlow is imported here, inside the functions, never at hwbench import time.
The one edit after conversion turns the squeeze head's RESHAPE back into the SQUEEZE real models carry
(`_with_squeezes`).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from math import prod

import numpy as np

from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import mbconv_adds, mbconv_layers

CALIBRATION_SAMPLES = 8


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging
    import warnings

    with _stderr_captured():  # TensorFlow's C++ start-up chatter (CUDA probing) goes to fd 2
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="tensorflow")
    return tf


@contextmanager
def _stderr_captured():
    """The converter prints from C++ straight to file descriptor 2; keep that off the user's terminal
    and hand it back only if conversion fails."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def keras_model(arch: dict, rng: np.random.Generator, batch_size: int | None = 1):
    """The Keras model of an architecture, with weights drawn from `rng`; `batch_size=None` for one to
    train (the converter still sees batch 1: convert_int8 traces it so)."""
    import keras

    inputs = keras.Input(shape=tuple(arch["input"]), batch_size=batch_size, name="input")
    # Weights are drawn as each layer is built (cheaper than initializing, then setting them).
    weights = (lambda shape, dtype=None: _random_weights(tuple(shape), rng, is_bias=False),
               lambda shape, dtype=None: _random_weights(tuple(shape), rng, is_bias=True))
    return keras.Model(inputs, _sequence(arch["layers"], inputs, "l", weights), name="hwbench_model")


def _apply(layer: dict, x, name: str, weights):
    """`layer` of a spec (see space.py) applied to the Keras tensor `x`; `weights` are the kernel and
    bias initializers."""
    from keras import layers as L

    op = layer["op"]
    activation = layer.get("activation")
    kernel, bias = weights
    if op in ("conv", "dwconv"):
        normalized = layer.get("batchnorm", False)
        common = {"strides": layer["stride"], "padding": layer["padding"], "use_bias": not normalized,
                  "activation": None if normalized else activation, "bias_initializer": bias, "name": name}
        y = L.Conv2D(layer["filters"], layer["kernel"], kernel_initializer=kernel, **common)(x) if op == "conv" else \
            L.DepthwiseConv2D(layer["kernel"], depth_multiplier=layer["multiplier"], depthwise_initializer=kernel,
                              **common)(x)
        if not normalized:
            return y
        # Beta drawn like a bias, so that the folded bias is never all zeros.
        y = L.BatchNormalization(beta_initializer=bias, name=f"{name}_bn")(y)
        return L.Activation(activation, name=f"{name}_act")(y) if activation else y
    if op == "mbconv":
        channels = x.shape[-1]
        y = _sequence(mbconv_layers(layer, channels), x, f"{name}_", weights)
        return L.Add(name=f"{name}_add")([x, y]) if mbconv_adds(layer, channels) else y
    if op in ("maxpool", "avgpool"):
        pool = L.MaxPooling2D if op == "maxpool" else L.AveragePooling2D
        return pool(layer["size"], strides=layer["stride"], padding=layer["padding"], name=name)(x)
    if op == "pad":
        top, bottom, left, right = layer["pads"]
        return L.ZeroPadding2D(((top, bottom), (left, right)), name=name)(x)
    if op == "residual":
        y = L.Activation(layer["preact"], name=f"{name}_pre")(x) if layer.get("preact") else x
        y = _sequence(layer["body"], y, f"{name}_", weights)
        merge = layer.get("merge", "add")
        y = {"add": L.Add, "sub": L.Subtract, "mul": L.Multiply}[merge](name=f"{name}_{merge}")([x, y])
        return L.Activation(activation, name=f"{name}_act")(y) if activation else y
    if op == "concat":
        y = L.Concatenate(name=f"{name}_cat")([_sequence(branch, x, f"{name}_{j}_", weights)
                                               for j, branch in enumerate(layer["branches"])])
        return L.Activation(activation, name=f"{name}_act")(y) if activation else y
    if op == "se":
        y = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_mean")(x)
        y = L.Conv2D(layer["units"], 1, activation=activation, kernel_initializer=kernel, bias_initializer=bias,
                     name=f"{name}_reduce")(y)
        y = L.Conv2D(x.shape[-1], 1, activation="sigmoid", kernel_initializer=kernel, bias_initializer=bias,
                     name=f"{name}_expand")(y)
        return L.Multiply(name=f"{name}_mul")([x, y])
    if op == "context":
        mean = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_mean")(x)
        merge = L.Add if layer["merge"] == "add" else L.Subtract
        return merge(name=f"{name}_{layer['merge']}")([x, mean])
    if op == "transpose":
        return L.Permute(tuple(p + 1 for p in layer["perm"]), name=name)(x)
    if op == "upsample":
        _, h, w, _ = x.shape
        return L.Resizing(h * layer["factor"], w * layer["factor"], interpolation="nearest", name=name)(x)
    if op == "global_avg":
        return L.GlobalAveragePooling2D(keepdims=layer.get("keepdims", False), name=name)(x)
    if op == "flatten":
        return L.Flatten(name=name)(x)
    if op == "squeeze":  # converted to a RESHAPE, which _with_squeezes turns back into a SQUEEZE
        return L.Reshape((x.shape[-1],), name=name)(x)
    if op == "dense":
        return L.Dense(layer["units"], activation=activation, kernel_initializer=kernel, bias_initializer=bias,
                       name=name)(x)
    if op == "softmax":
        return L.Softmax(name=name)(x)
    if op == "log_softmax":
        return L.Activation("log_softmax", name=name)(x)
    raise ValueError(f"unknown layer op {op!r}")  # a bug in the sampler, not a user error


def _sequence(layers: list[dict], x, prefix: str, weights):
    """`layers` applied one after another, named `prefix` and their position."""
    for j, layer in enumerate(layers):
        x = _apply(layer, x, f"{prefix}{j}", weights)
    return x


def _random_weights(shape: tuple[int, ...], rng: np.random.Generator, is_bias: bool) -> np.ndarray:
    if is_bias:
        # Never all zeros: the converter drops an all-zero Dense bias from the graph. Positive, so that no
        # ReLU layer is dead on every calibration input: its output scale would collapse, and with it
        # the next requantization multiplier (2^30 and more, which TFLite cannot apply).
        return np.abs(rng.normal(0.0, 0.1, size=shape)).astype(np.float32)
    fan_in = prod(shape[:-1]) if len(shape) > 1 else 1
    return rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), size=shape).astype(np.float32)


def convert_int8(model, input_shape: tuple[int, ...], rng: np.random.Generator, io: str = "int8",
                 calibration: np.ndarray | None = None) -> bytes:
    """Full-integer conversion with int8 input and output, or float32 ones (`io`) that the converter
    quantizes and dequantizes at the model's edges. Calibrated on `calibration` (inputs, stacked along
    the first axis: a trained model's real data), else on random inputs from `rng`."""
    tf = _quiet_tensorflow()
    signature = tf.TensorSpec((1, *input_shape), tf.float32, name="input")
    function = tf.function(lambda x: model(x, training=False), input_signature=[signature], autograph=False)
    if calibration is None:
        samples = [rng.uniform(-1.0, 1.0, size=(1, *input_shape)).astype(np.float32)
                   for _ in range(CALIBRATION_SAMPLES)]
    else:
        samples = [np.asarray(x, np.float32)[None] for x in calibration]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.as_dtype(io)
    with _stderr_captured() as log:
        try:
            return converter.convert()
        except Exception as e:
            log.seek(0)
            raise HwbenchError(f"TFLite conversion failed: {e}\n{log.read().decode(errors='replace')}") from e


def build_tflite(arch: dict, rng: np.random.Generator) -> bytes:
    _quiet_tensorflow()
    model = keras_model(arch, rng)
    data = convert_int8(model, tuple(arch["input"]), rng, arch.get("io", "int8"))
    return _with_squeezes(data) if any(layer["op"] == "squeeze" for layer in arch["layers"]) else data


def _with_squeezes(data: bytes) -> bytes:
    """The model with its RESHAPE of a 1x1 map to a vector made a SQUEEZE of the two spatial axes.

    Today's converter turns every squeeze of a static shape into a RESHAPE; models from earlier
    converters (TOCO), such as MobileNet v1, carry the SQUEEZE, and the runtime runs it.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SQUEEZE
    code.version = 1
    model.operatorCodes.append(code)
    squeezed = 0
    for op in graph.operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode != schema.BuiltinOperator.RESHAPE:
            continue
        before, after = (list(graph.tensors[i].shape) for i in (op.inputs[0], op.outputs[0]))
        if len(before) == 4 and before[:3] == [1, 1, 1] and after == [1, before[3]]:
            op.opcodeIndex = len(model.operatorCodes) - 1
            op.inputs = op.inputs[:1]  # the shape operand stays in the file, unused
            op.builtinOptionsType = schema.BuiltinOptions.SqueezeOptions
            op.builtinOptions = schema.SqueezeOptionsT()
            op.builtinOptions.squeezeDims = [1, 2]
            squeezed += 1
    if squeezed != 1:
        raise AssertionError(f"{squeezed} reshapes of a 1x1 map to a vector, expected one")  # a builder bug
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
