"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED.

What TFLite's Prepare computes for the reference kernels (lite/kernels/conv.cc, depthwise_conv.cc,
fully_connected.cc, kernel_util.cc) is computed here, on the host, in the same precision:

- Convolutions requantize with a (Q31 multiplier, shift) pair per output channel, from
  PopulateConvolutionQuantizationParams: double(input scale) * double(filter scale) / double(output
  scale). A per-tensor filter scale is broadcast to every channel.
- FULLY_CONNECTED's reference kernel requantizes in double precision instead:
  round(double(acc) * (double(input scale) * double(filter scale) / double(output scale))),
  per-tensor and per-channel alike. The plan carries each unit's double scale, computed here in
  double precision as the reference does, as an integer mantissa and exponent; the kernel
  reproduces the product and both roundings in integers (fixed-point multipliers differ by 1 LSB
  on some inputs, as TFLM's kernel does).
- Padding is ComputePaddingHeightWidth's: only the top/left padding reaches the kernel.
- Fused activations are clamps (CalculateActivationRangeQuantized).

On a fast path (hwbench.kernel_paths) the filter is packed as the kernel reads it (pack_rows) and the
bias carries the input zero point's contribution (folded_bias), so the kernel multiplies raw int8
values.
"""

from __future__ import annotations

import numpy as np

from hwbench.graph import NO_TENSOR, Graph, Op, Tensor
from hwbench.kernel_paths import REFERENCE, KernelPath, round_up4
from firmware_runner.compiler.codes import path_codes
from firmware_runner.compiler.lowering.base import Lowered, Unsupported, int32_array, pack, require_dtypes
from firmware_runner.compiler.quantization import activation_range, double_scale, quantize_multiplier, scale, zero_point

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def compute_out_size(padding: str, image: int, filter_size: int, stride: int) -> int:
    """TFLite's ComputeOutSize (dilation 1), C integer division (truncates toward zero)."""
    numerator = image + stride - 1 if padding == "SAME" else image + stride - filter_size
    return int(numerator / stride) if numerator < 0 else numerator // stride


def compute_padding(stride: int, image: int, filter_size: int, out: int) -> int:
    """TFLite's ComputePaddingWithOffset (dilation 1): the padding before the first element."""
    return max((out - 1) * stride + filter_size - image, 0) // 2


def _activation(op: Op) -> str:
    activation = op.options.get("fused_activation_function", "NONE") or "NONE"
    if activation not in ACTIVATIONS:
        raise Unsupported(f"fused activation {activation}")
    return activation


def _operand(graph: Graph, op: Op, position: int) -> Tensor | None:
    if position >= len(op.inputs) or op.inputs[position] == NO_TENSOR:
        return None
    return graph.tensors[op.inputs[position]]


def _check_filter(filter_: Tensor, channels: int, axis: int) -> np.ndarray:
    """The filter's float32 scale for each of `channels` output channels (a per-tensor scale
    broadcast); refuses what the integer kernels do not implement."""
    if filter_.dtype != "int8":
        raise Unsupported(f"{filter_.dtype} weights {filter_.name!r} (only int8)")
    q = filter_.quantization
    if q is None or len(q.scale) == 0:
        raise Unsupported(f"weights {filter_.name!r} without quantization")
    if np.any(np.asarray(q.zero_point) != 0):
        raise Unsupported(f"weights {filter_.name!r} with a non-zero zero point")
    if q.per_channel and (len(q.scale) != channels or q.axis != axis):
        raise Unsupported(f"weights {filter_.name!r} quantized along axis {q.axis} with {len(q.scale)} scales "
                          f"(expected {channels} along axis {axis})")
    scales = np.asarray(q.scale, dtype=np.float32)
    return scales if q.per_channel else np.full(channels, scales[0], dtype=np.float32)


def _check_bias(bias: Tensor | None, channels: int) -> None:
    if bias is None:
        return
    if bias.dtype != "int32":
        raise Unsupported(f"{bias.dtype} bias {bias.name!r} (only int32)")
    if bias.size != channels:
        raise Unsupported(f"bias {bias.name!r} with {bias.size} values for {channels} output channels")


def _check_activations(graph: Graph, op: Op, tensors: list[Tensor]) -> None:
    require_dtypes(graph, op)
    for t in tensors:
        q = t.quantization
        if q is None or q.per_channel:
            raise Unsupported(f"activation tensor {t.name!r} without per-tensor quantization")
        if not -128 <= int(q.zero_point[0]) <= 127 or not float(q.scale[0]) > 0.0:
            raise Unsupported(f"activation tensor {t.name!r} with zero point {int(q.zero_point[0])} "
                              f"and scale {float(q.scale[0])}")


def per_channel_multipliers(input_: Tensor, filter_scales: np.ndarray, output: Tensor
                            ) -> tuple[np.ndarray, np.ndarray]:
    """PopulateConvolutionQuantizationParams: each channel's effective scale in double from the
    float32 scales, then QuantizeMultiplier."""
    s_in, s_out = float(scale(input_)), float(scale(output))
    pairs = [quantize_multiplier(s_in * float(s) / s_out) for s in filter_scales]
    return int32_array([m for m, _ in pairs]), int32_array([s for _, s in pairs])


def _spatial(graph: Graph, op: Op, input_: Tensor, filter_: Tensor, output: Tensor) -> tuple[int, int, int, int]:
    """Strides and top/left padding of a 2-D window op, checked against the output shape."""
    o = op.options
    if o.get("dilation_h_factor", 1) != 1 or o.get("dilation_w_factor", 1) != 1:
        raise Unsupported(f"dilation {o.get('dilation_h_factor')}x{o.get('dilation_w_factor')}")
    padding = o.get("padding")
    if padding not in ("SAME", "VALID"):
        raise Unsupported(f"padding {padding}")
    stride_h, stride_w = int(o.get("stride_h", 0)), int(o.get("stride_w", 0))
    if stride_h < 1 or stride_w < 1:
        raise Unsupported(f"stride {stride_h}x{stride_w}")
    for t in (input_, filter_, output):
        if len(t.shape) != 4:
            raise Unsupported(f"rank-{len(t.shape)} tensor {t.name!r} (expected rank 4)")
    _, in_h, in_w, _ = input_.shape
    _, f_h, f_w, _ = filter_.shape
    out_h = compute_out_size(padding, in_h, f_h, stride_h)
    out_w = compute_out_size(padding, in_w, f_w, stride_w)
    if (output.shape[0], output.shape[1], output.shape[2]) != (input_.shape[0], out_h, out_w):
        raise Unsupported(f"output shape {output.shape} where {padding} padding gives "
                          f"{(input_.shape[0], out_h, out_w)} (batch, height, width)")
    return stride_h, stride_w, compute_padding(stride_h, in_h, f_h, out_h), compute_padding(stride_w, in_w, f_w, out_w)


def pack_rows(rows: np.ndarray, block: int) -> np.ndarray:
    """A [channels, K] int8 filter as the fast paths read it, [channels, Kp]: each row padded with zeros
    to Kp (K rounded up to 4), then blocks of `block` channels interleaved 4 bytes at a time (channel
    0's bytes 0-3, channel 1's bytes 0-3, ..., channel 0's bytes 4-7, ...); the channels past the last
    whole block follow row by row."""
    channels, k = rows.shape
    kp = round_up4(k)
    padded = np.zeros((channels, kp), np.int8)
    padded[:, :k] = rows
    whole = channels // block * block
    blocks = padded[:whole].reshape(whole // block, block, kp // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([blocks.reshape(-1), padded[whole:].reshape(-1)]).reshape(channels, kp)


def folded_bias(bias: Tensor | None, rows: np.ndarray, input_zero_point: int) -> np.ndarray:
    """bias - input_zero_point * (the sum of each row), modulo 2^32 as the kernels' int32 sums wrap:
    sum(w * (x - zp)) + bias == sum(w * x) + folded bias."""
    total = (0 if bias is None else bias.data.astype(np.int64)) - input_zero_point * rows.astype(np.int64).sum(axis=1)
    return ((total + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int32)


def conv_window(stride_h: int, stride_w: int, pad_top: int, pad_left: int, filter_h: int, filter_w: int,
                act_min: int, act_max: int, path: KernelPath) -> bytes:
    """struct hwb_conv_window in runtime/kernels/conv.h, field for field: the parameters of CONV_2D and the
    first ones of DEPTHWISE_CONV_2D."""
    return pack(stride_h, stride_w, pad_top, pad_left, filter_h, filter_w, act_min, act_max, path_codes()[path.name])


def channel_records(bias: np.ndarray, multipliers: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """The fast paths' per-channel requantization, [channels, 3] int32 (hwb_channel_quant in
    runtime/kernels/conv.h): bias, multiplier, shift."""
    return np.stack([bias, multipliers, shifts], axis=1).astype(np.int32)


def lower_conv2d(graph: Graph, op: Op, path: KernelPath = REFERENCE) -> Lowered:
    input_, filter_, output = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    bias = _operand(graph, op, 2)
    _check_activations(graph, op, [input_, output])
    stride_h, stride_w, pad_top, pad_left = _spatial(graph, op, input_, filter_, output)
    channels = filter_.shape[0]
    if output.shape[3] != channels:
        raise Unsupported(f"output channels {output.shape[3]} for a filter of {channels}")
    if input_.shape[3] % filter_.shape[3] != 0 or channels % (input_.shape[3] // filter_.shape[3]) != 0:
        raise Unsupported(f"{input_.shape[3]} input channels for a filter of depth {filter_.shape[3]}")
    filter_scales = _check_filter(filter_, channels, axis=0)
    _check_bias(bias, channels)
    multipliers, shifts = per_channel_multipliers(input_, filter_scales, output)
    act_min, act_max = activation_range(_activation(op), output)
    params = conv_window(stride_h, stride_w, pad_top, pad_left, filter_.shape[1], filter_.shape[2], act_min,
                         act_max, path)
    if path == REFERENCE:
        return Lowered("CONV_2D", [op.inputs[0], op.inputs[1], NO_TENSOR if bias is None else op.inputs[2],
                                   multipliers, shifts], params)
    rows = filter_.data.reshape(channels, -1)
    return Lowered("CONV_2D", [op.inputs[0], pack_rows(rows, 2),
                               channel_records(folded_bias(bias, rows, zero_point(input_)), multipliers, shifts)],
                   params)


def pack_depthwise(filter_: np.ndarray) -> np.ndarray:
    """A [1, FH, FW, C] depthwise filter as the fast paths read it, [ceil(C / 4), FH * FW, 2] int32: for
    each group of four channels and each tap, the weights of channels 0 and 2, then of 1 and 3, as int16
    pairs (the halves SXTB16 gives of a word of four input channels); zeros past C."""
    taps = filter_.reshape(-1, filter_.shape[3]).astype(np.int32)  # [FH * FW, C]
    padded = np.zeros((taps.shape[0], round_up4(taps.shape[1])), np.int32)
    padded[:, :taps.shape[1]] = taps
    lanes = padded.reshape(taps.shape[0], -1, 4).transpose(1, 0, 2)  # [groups, taps, 4 channels]
    words = np.stack([(lanes[..., 0] & 0xFFFF) | (lanes[..., 2] << 16), (lanes[..., 1] & 0xFFFF) | (lanes[..., 3] << 16)],
                     axis=2)
    return words.astype(np.uint32).view(np.int32)


def lower_depthwise_conv2d(graph: Graph, op: Op, path: KernelPath = REFERENCE) -> Lowered:
    input_, filter_, output = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    bias = _operand(graph, op, 2)
    _check_activations(graph, op, [input_, output])
    stride_h, stride_w, pad_top, pad_left = _spatial(graph, op, input_, filter_, output)
    channels = filter_.shape[3]
    if filter_.shape[0] != 1:
        raise Unsupported(f"depthwise filter shape {filter_.shape} (expected [1, H, W, C])")
    in_channels = input_.shape[3]
    if channels % in_channels != 0 or output.shape[3] != channels:
        raise Unsupported(f"{in_channels} input and {output.shape[3]} output channels for a depthwise filter "
                          f"of {channels} channels")
    multiplier = channels // in_channels
    option = op.options.get("depth_multiplier", multiplier)
    if option != multiplier:
        raise Unsupported(f"depth_multiplier {option} where the shapes give {multiplier}")
    filter_scales = _check_filter(filter_, channels, axis=3)
    _check_bias(bias, channels)
    multipliers, shifts = per_channel_multipliers(input_, filter_scales, output)
    act_min, act_max = activation_range(_activation(op), output)
    # Field order: struct depthwise_conv2d_params in runtime/kernels/depthwise_conv2d.c.
    params = conv_window(stride_h, stride_w, pad_top, pad_left, filter_.shape[1], filter_.shape[2], act_min,
                         act_max, path) + pack(multiplier)
    if path == REFERENCE:
        return Lowered("DEPTHWISE_CONV_2D", [op.inputs[0], op.inputs[1], NO_TENSOR if bias is None else op.inputs[2],
                                             multipliers, shifts], params)
    rows = filter_.data.reshape(-1, channels).T  # [C, FH * FW]: each output channel's taps
    return Lowered("DEPTHWISE_CONV_2D", [op.inputs[0], pack_depthwise(filter_.data),
                                         channel_records(folded_bias(bias, rows, zero_point(input_)), multipliers,
                                                         shifts)], params)


def lower_fully_connected(graph: Graph, op: Op, path: KernelPath = REFERENCE) -> Lowered:
    input_, filter_, output = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    bias = _operand(graph, op, 2)
    _check_activations(graph, op, [input_, output])
    if op.options.get("weights_format", 0) not in (0, "DEFAULT"):
        raise Unsupported(f"weights format {op.options.get('weights_format')}")
    if len(filter_.shape) != 2:
        raise Unsupported(f"rank-{len(filter_.shape)} weights {filter_.name!r} (expected [units, depth])")
    units, depth = filter_.shape
    batches, remainder = divmod(input_.size, depth)
    if remainder or output.size != batches * units or output.shape[-1] != units:
        raise Unsupported(f"input shape {input_.shape} and output shape {output.shape} for weights {filter_.shape}")
    filter_scales = _check_filter(filter_, units, axis=0)
    _check_bias(bias, units)
    act_min, act_max = activation_range(_activation(op), output)
    s_in, s_out = float(scale(input_)), float(scale(output))
    # The reference's double arithmetic, operation for operation: (s_in * s_filter) / s_out.
    # As int32 words (the mantissa's low word wraps; the struct reads it as uint32).
    scales = np.array([double_scale(s_in * float(s) / s_out) for s in filter_scales], dtype=np.int64).astype(np.int32)
    # Field order: struct fully_connected_params in runtime/kernels/fully_connected.c.
    params = pack(act_min, act_max, path_codes()[path.name])
    if path == REFERENCE:
        return Lowered("FULLY_CONNECTED", [op.inputs[0], op.inputs[1], NO_TENSOR if bias is None else op.inputs[2],
                                           scales], params)
    records = np.concatenate([folded_bias(bias, filter_.data, zero_point(input_))[:, None], scales], axis=1)
    return Lowered("FULLY_CONNECTED", [op.inputs[0], pack_rows(filter_.data, 4), records], params)


LOWERINGS = {"CONV_2D": lower_conv2d, "DEPTHWISE_CONV_2D": lower_depthwise_conv2d,
             "FULLY_CONNECTED": lower_fully_connected}
