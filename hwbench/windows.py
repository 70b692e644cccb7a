"""Where a sliding window (a convolution's or a pooling's filter) meets its input: how many of its
taps lie inside the input rather than in the zero padding around it."""

from __future__ import annotations

from functools import lru_cache


def window_extent(size: int, filter_size: int, out: int, stride: int, pad: int) -> int:
    """Sum over output positions of the window taps that lie inside the input along one axis:
    how often the kernel's inner loop over that axis runs per (other indices)."""
    total = out * filter_size
    # Clipped at the start: positions whose window origin o * stride - pad is negative.
    o = 0
    while o < out and o * stride - pad < 0:
        total -= min(pad - o * stride, filter_size)
        o += 1
    # Clipped at the end: positions whose window reaches past the input.
    o = out - 1
    while o >= 0 and o * stride - pad + filter_size > size:
        total -= min(o * stride - pad + filter_size - size, filter_size)
        o -= 1
    return max(total, 0)


def same_padding(stride: int, size: int, filter_size: int, out: int) -> int:
    """TFLite's ComputePaddingWithOffset (dilation 1): the padding before the first element
    (zero for VALID, where the windows never cross the end)."""
    return max((out - 1) * stride + filter_size - size, 0) // 2


@lru_cache(maxsize=4096)
def axis_taps(size: int, filter_size: int, out: int, stride: int) -> int:
    """window_extent with the padding TFLite gives `out` outputs (SAME, or none for VALID)."""
    return window_extent(size, filter_size, out, stride, same_padding(stride, size, filter_size, out))


def inside_share(in_hw: tuple[int, int], filter_hw: tuple[int, int], out_hw: tuple[int, int],
                 stride_hw: tuple[int, int]) -> float:
    """The share of a 2-D window op's filter taps, over all its outputs, that lie inside the input."""
    taps = [axis_taps(*axis) for axis in zip(in_hw, filter_hw, out_hw, stride_hw)]
    return taps[0] * taps[1] / (out_hw[0] * filter_hw[0] * out_hw[1] * filter_hw[1])
