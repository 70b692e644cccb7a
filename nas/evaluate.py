"""One candidate's evaluation: train the spec's Keras model, convert it to full-int8 TFLite with the
generator's converter, and measure what the board would get — accuracy of the int8 model run by the
hwbench host runtime (bit-exact with the board), the exact peak and arena, the op table the board's runtime
decodes the plan into, the weights, the flash (plan and runtime code), and the latency the board's model predicts.

Deterministic for a seed without touching process-wide seeds: initial weights come from a numpy
generator (as the generator's models do) and the training order is shuffled by it too.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from hwbench.errors import HwbenchError
from nas.datasets import Dataset
from nas.objectives import LatencyEstimator

BATCH_SIZE = 32
LEARNING_RATE = 3e-3
CALIBRATION_IMAGES = 100  # training images the converter calibrates the int8 ranges on


@dataclass(frozen=True)
class Evaluation:
    status: str  # "ok", "diverged" (training lost the way: recorded, the search goes on) or "failed"
    reason: str | None = None
    val_accuracy: float | None = None  # the int8 model's, on the host runtime
    test_accuracy: float | None = None
    macs: int | None = None
    peak_bytes: int | None = None  # the minimum-peak order's
    arena_bytes: int | None = None  # the runtime's layout of it, scratch buffers included
    table_bytes: int | None = None  # the op table the board's runtime decodes the plan into, beside the arena
    weight_bytes: int | None = None
    flash_bytes: int | None = None  # the plan (weights, op records, quantization parameters) and the runtime's code
    latency_ms: float | None = None
    train_seconds: float | None = None
    tflite: bytes | None = None

    def metrics(self) -> dict:
        """Everything but the model bytes, JSON-ready."""
        return {k: v for k, v in asdict(self).items() if k != "tflite"}


def evaluate(spec: dict, dataset: Dataset, epochs: int, seed: int, latency: LatencyEstimator | None = None,
             learning_rate: float = LEARNING_RATE, code_bytes: int = 0, firmware=None) -> Evaluation:
    """Train, convert and measure `spec` on `dataset`; `code_bytes`: the runtime's code, counted in flash;
    `firmware`: the board's (firmware_runner.firmware.build.Firmware), which knows its op table's size."""
    from hwbench.generate.build import _quiet_tensorflow, convert_int8, keras_model

    _quiet_tensorflow()
    import keras

    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    model = keras_model(spec, rng, batch_size=None)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for _ in range(epochs):
        order = rng.permutation(len(dataset.x_train))
        history = model.fit(dataset.x_train[order], dataset.y_train[order], batch_size=BATCH_SIZE, epochs=1,
                            shuffle=False, verbose=0)
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):
            return Evaluation("diverged", f"training loss became {loss}", train_seconds=time.perf_counter() - start)
    train_seconds = time.perf_counter() - start
    calibration = dataset.x_train[rng.permutation(len(dataset.x_train))[:CALIBRATION_IMAGES]]
    recalibrate_batchnorm(model, calibration)
    try:
        data = convert_int8(model, tuple(spec["input"]), rng, calibration=calibration)
        return measure(data, dataset, latency, train_seconds, code_bytes, firmware)
    except HwbenchError as e:
        return Evaluation("failed", str(e).splitlines()[0], train_seconds=train_seconds)


def recalibrate_batchnorm(model, images: np.ndarray) -> None:
    """Batch normalisation's moving statistics made the trained weights' own, on `images` (as TinyNAS
    evaluates sampled networks): after a short training they lag weights that moved fast (measured: a
    MBConv net on digits after one epoch, 76% with batch statistics, 12% with the moving ones), and the
    converter folds them into the int8 model."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # the statistics of this batch replace the moving ones
    if norms:
        model(images, training=True)


def measure(data: bytes, dataset: Dataset, latency: LatencyEstimator | None, train_seconds: float,
            code_bytes: int = 0, firmware=None) -> Evaluation:
    """The converted model's accuracy on the host runtime, its memory (the table with `firmware`), weights,
    flash (the plan and `code_bytes`) and latency."""
    from firmware_runner.compiler.plan import compile_plan
    from firmware_runner.runtime.host import HostRuntime
    from hwbench.costs import graph_cost
    from hwbench.memory import schedule
    from hwbench.tflite_reader import parse_tflite

    graph = parse_tflite(data, source="candidate")
    order = schedule(graph)
    plan = compile_plan(graph, order.order, fast=firmware.fast_paths if firmware else True)  # the board's kernel paths
    runtime = HostRuntime(plan)
    cost = graph_cost(graph)
    return Evaluation("ok", val_accuracy=int8_accuracy(runtime, graph, dataset.x_val, dataset.y_val),
                      test_accuracy=int8_accuracy(runtime, graph, dataset.x_test, dataset.y_test),
                      macs=cost.macs, peak_bytes=order.peak_bytes, arena_bytes=plan.arena_size,
                      table_bytes=firmware.table_size(plan.blob) if firmware else None, weight_bytes=cost.weight_bytes,
                      flash_bytes=code_bytes + len(plan.blob),
                      latency_ms=latency.ms(graph) if latency else None,
                      train_seconds=train_seconds, tflite=data)


def int8_accuracy(runtime, graph, x: np.ndarray, y: np.ndarray) -> float:
    """The share of images the int8 model classifies right, each quantized as the model's input says."""
    q = graph.tensors[graph.inputs[0]].quantization
    images = np.clip(np.round(x / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)
    predicted = np.array([np.argmax(runtime.run([image])[0]) for image in images])
    return float(np.mean(predicted == y))
