"""The space of random models: architecture specs, sampled to fit bounds before any TensorFlow work.

A spec is a JSON-able dict (the manifest keeps it as is; a search samples and mutates the same format):

    {"input": [H, W, C] or [N],
     "io": "float32",          (optional; float input and output, quantized at the edges; default int8)
     "layers": [layer, ...]}

with these layers (shapes are H, W, C without the batch; A is an activation, see below):

    {"op": "conv", "filters": 16, "kernel": 3, "stride": 2, "padding": "same" | "valid", "activation": A}
    {"op": "dwconv", "kernel": 3, "stride": 1, "padding": ..., "multiplier": 1 | 2, "activation": A}
                                                            either may add "batchnorm": true: trained with batch
                                                            normalisation before A, which the converter folds
                                                            into the convolution (the same graph)
    {"op": "mbconv", "expansion": 6, "kernel": 5, "stride": 2, "filters": 24, "activation": "relu6",
     "batchnorm": true}                                     MobileNetV2's inverted residual: a 1x1 convolution to
                                                            expansion x the input's channels (none for 1), a
                                                            depthwise kernel x kernel (SAME), both with A, a
                                                            linear 1x1 convolution to filters, and x added when
                                                            the shape is kept (stride 1, as many filters as x)
    {"op": "maxpool" | "avgpool", "size": 2, "stride": 2, "padding": ...}
    {"op": "pad", "pads": [top, bottom, left, right]}      zero padding, before a VALID convolution
    {"op": "residual", "body": [layers keeping the shape], "activation": None | "relu" | "relu6",
     "preact": None | "relu" | "relu6", "merge": "add" | "sub" | "mul"}
                                                            x + body(preact(x)) (or -, or x, gated),
                                                            then the activation; merge defaults to add
    {"op": "concat", "branches": [[layers keeping H and W], ...], "activation": A}
                                                            channel concatenation; a branch [] is x itself
    {"op": "se", "units": 8, "activation": "relu" | "hard_swish"}
                                                            squeeze-and-excite: x * sigmoid(1x1(A(1x1(mean))))
    {"op": "context", "merge": "add" | "sub"}               x + or - its mean over H and W
    {"op": "transpose", "perm": [1, 0, 2]}                  a permutation of (H, W, C)
    {"op": "upsample", "factor": 2}                         nearest-neighbour resize
    {"op": "global_avg", "keepdims": False}, {"op": "flatten"}, {"op": "squeeze"} (of a 1x1 map)
    {"op": "dense", "units": 10, "activation": A}
    {"op": "softmax"}, {"op": "log_softmax"}

A is None, "relu", "relu6" (fused into the op), "leaky_relu", "tanh", "hard_swish" or "sigmoid".
Costs come from the spec's graph IR (spec_graph.py): exactly the converted model's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwbench.errors import HwbenchError
from hwbench.generate.spec_graph import FUSED_ACTIVATIONS, GraphBuilder, SpecCost, graph_spec_cost

MAX_CHANNELS = 256
MAX_TRIES = 2_000
# Activations of convolutions and their relative frequencies: the fused ones dominate, as in real models.
CONV_ACTIVATIONS = {"relu": 3, None: 2, "relu6": 2, "leaky_relu": 1, "hard_swish": 1, "tanh": 0.6}
RESIDUAL_MERGES = {"add": 4, "sub": 1, "mul": 1}
HIDDEN_ACTIVATIONS = {"relu": 3, "relu6": 1, "tanh": 1, "leaky_relu": 1}  # a linear hidden Dense would fold
# Spatial blocks and their relative frequencies.
BLOCKS = {"conv": 3, "dwconv": 2, "pool": 1, "residual": 1, "pad_conv": 0.6, "concat": 0.8, "se": 0.5,
          "context": 0.6, "transpose": 0.4, "upsample": 0.5}


@dataclass(frozen=True)
class Bounds:
    """Limits a generated model must respect, so a population fits a target board."""

    max_macs: int = 5_000_000
    max_weight_bytes: int = 128 * 1024
    max_peak_bytes: int = 96 * 1024
    min_macs: int = 0

    def __post_init__(self) -> None:
        if min(self.max_macs, self.max_weight_bytes, self.max_peak_bytes) <= 0 or self.min_macs >= self.max_macs:
            raise HwbenchError(f"model bounds are empty: {self}")

    def admit(self, macs: int, weight_bytes: int, peak_bytes: int = 0) -> bool:
        return not self.violations(SpecCost(macs, weight_bytes, peak_bytes))

    def violations(self, cost: SpecCost) -> list[str]:
        """The bounds `cost` breaks, by name ("min_macs", "max_macs", "max_weight_bytes", "max_peak_bytes")."""
        broken = [] if cost.macs >= self.min_macs else ["min_macs"]
        return broken + [f"max_{name}" for name in ("macs", "weight_bytes", "peak_bytes")
                         if getattr(cost, name) > getattr(self, f"max_{name}")]


def same_padding(size: int, kernel: int, stride: int) -> list[int]:
    """The zeros SAME padding adds before and after along one axis."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return [total // 2, total - total // 2]


class Sampler:
    """Draws random specs from one numpy Generator (so a seed fixes the whole population)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, options, weights=None):
        if isinstance(options, dict):
            options, weights = list(options), list(options.values())
        p = None if weights is None else np.asarray(weights, dtype=float) / sum(weights)
        return options[int(self.rng.choice(len(options), p=p))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def channels(self, low: int = 1, high: int = MAX_CHANNELS) -> int:
        # Log-uniform, so small and large channel counts are both well represented.
        return int(np.clip(round(2 ** self.rng.uniform(np.log2(low), np.log2(high))), low, high))

    def input_shape(self) -> list[int]:
        kind = self.rng.random()
        if kind < 0.6:  # image
            side = int(2 ** self.rng.uniform(3, np.log2(97)))  # log-uniform over 8..96
            return [side, side, self.pick([1, 3])]
        if kind < 0.9:  # audio features: time × frequency × 1, as in keyword spotting
            return self.pick([[49, 10, 1], [49, 40, 1], [32, 13, 1], [98, 10, 1], [30, 1, 40]])
        return [int(self.rng.integers(16, 1025))]  # a feature vector, as in anomaly detection

    def architecture(self) -> tuple[dict, GraphBuilder]:
        """A spec and its graph builder (holding the spec's graph IR)."""
        input_shape = self.input_shape()
        io = "float32" if self.chance(0.2) else "int8"
        graph = GraphBuilder(input_shape, io)
        layers: list[dict] = []

        def add(*new: dict) -> None:
            for layer in new:
                layers.append(layer)
                graph.add(layer)

        classes = int(self.rng.integers(2, 33))
        head = None
        if len(input_shape) == 3:
            for _ in range(int(self.rng.integers(1, 9))):
                add(*self.block(graph))
            head = self.pick({"global_avg": 4, "flatten": 3, "squeeze": 2})
        if head == "squeeze":  # MobileNet v1's classifier: a 1x1 convolution of the pooled map, squeezed
            add({"op": "global_avg", "keepdims": True},
                {"op": "conv", "filters": classes, "kernel": 1, "stride": 1, "padding": "valid", "activation": None},
                {"op": "squeeze"})
        else:
            if head:
                add({"op": head})
            for _ in range(int(self.rng.integers(0, 3))):
                add({"op": "dense", "units": self.channels(4), "activation": self.pick(HIDDEN_ACTIVATIONS)})
            add({"op": "dense", "units": classes, "activation": None})
        final = self.pick({None: 5, "softmax": 3, "log_softmax": 2})
        if final:
            add({"op": final})
        arch = {"input": input_shape, **({"io": io} if io != "int8" else {}), "layers": layers}
        return arch, graph

    def block(self, graph: GraphBuilder) -> list[dict]:
        """One or two spatial layers that suit the graph's current output."""
        shape = graph.shape()
        h, w, c = shape
        kinds = dict(BLOCKS)
        if h * w == 1:  # nothing to pool over
            for kind in ("se", "context", "transpose"):
                kinds.pop(kind)
        last = graph.last_op
        if min(h, w) < 2 or last is not None and last.type == "TRANSPOSE":
            kinds.pop("transpose", None)  # two in a row: the converter merges them
        if max(h, w) > 32:
            kinds.pop("upsample")
        if c == 1 and min(h, w) == 1:  # a vector along H or W: the converter reshapes the ADD of two of them
            for kind in ("residual", "context", "se"):
                kinds.pop(kind, None)
        kind = self.pick(kinds)
        if kind == "pool":
            return [self.pool(shape)]
        if kind == "residual":
            # Not the clamp x already has: the converter would drop it.
            clamp = last.options.get("fused_activation_function") if last is not None else None
            preact = self.pick({p: n for p, n in {None: 3, "relu": 1, "relu6": 1}.items()
                                if p is None or FUSED_ACTIVATIONS[p] != clamp})
            body = [self.conv_like(shape, stride=1, padding="same", keep_channels=True)
                    for _ in range(int(self.rng.integers(1, 3)))]
            # Beside the usual ADD, a SUB or MUL of two same-shape tensors (the other blocks broadcast
            # theirs); a 1 x 1 map stays with ADD, which the converter reshapes to a vector.
            merge = self.pick(RESIDUAL_MERGES) if h * w > 1 else "add"
            return [{"op": "residual", "body": body, "preact": preact, "merge": merge,
                     "activation": None if preact else self.pick(["relu", "relu6", None])}]
        if kind == "pad_conv":  # explicit zero padding, then a VALID convolution (ResNet's stem does this)
            kernel = int(self.rng.integers(2, 8))
            pads = [int(p) for p in self.rng.integers(0, kernel, size=4)]
            if not any(pads):
                pads[int(self.rng.integers(4))] = 1
            conv = self.conv_like(shape, padding="valid", kernel=kernel)
            if min(h + pads[0] + pads[1], w + pads[2] + pads[3]) < kernel or \
                    pads == same_padding(h, kernel, conv["stride"]) + same_padding(w, kernel, conv["stride"]):
                return [self.conv_like(shape)]  # too small, or what SAME pads (the converter folds that PAD)
            return [{"op": "pad", "pads": pads}, conv]
        if kind == "concat":
            return [self.concat(shape)]
        if kind == "se":
            return [{"op": "se", "units": max(1, c // int(self.pick([2, 4, 8]))),
                     "activation": self.pick(["relu", "hard_swish"])}]
        if kind == "context":
            return [{"op": "context", "merge": self.pick(["add", "sub"])}]
        if kind == "transpose":  # then a convolution, as in real models (a transpose read twice is duplicated)
            perm = self.pick([[1, 0, 2]] + ([[0, 2, 1]] if c > 1 else []))
            return [{"op": "transpose", "perm": perm}, self.conv_like(tuple(shape[p] for p in perm))]
        if kind == "upsample":
            return [{"op": "upsample", "factor": self.pick([2, 3])}]
        return [self.conv_like(shape, op=kind)]

    def pool(self, shape: tuple[int, ...], stride: int | None = None, padding: str | None = None) -> dict:
        h, w, _ = shape
        size = int(self.rng.integers(2, 4))
        if padding is None:
            padding = self.pick(["same", "valid"]) if min(h, w) >= size else "same"
        return {"op": self.pick(["maxpool", "avgpool"]), "size": size,
                "stride": stride or int(self.rng.integers(1, 3)), "padding": padding}

    def conv_like(self, shape: tuple[int, ...], op: str | None = None, stride: int | None = None,
                  padding: str | None = None, kernel: int | None = None, keep_channels: bool = False,
                  max_channels: int = MAX_CHANNELS) -> dict:
        h, w, c = shape
        op = op or self.pick(["conv", "dwconv"])
        kernel = kernel or int(self.rng.integers(1, 8))
        if padding is None:
            padding = self.pick(["same", "valid"]) if min(h, w) >= kernel else "same"
        if stride is None:
            stride = int(self.rng.integers(1, 3)) if min(h, w) >= 2 else 1
        if (op, h, w, kernel, stride, padding) == ("conv", 2, 2, 2, 1, "same"):
            kernel = 3  # TF 2.21's calibration reads uninitialized memory there: scales change run to run
        layer = {"op": op, "kernel": kernel, "stride": stride, "padding": padding,
                 "activation": self.pick(CONV_ACTIVATIONS)}
        if op == "conv":
            layer["filters"] = c if keep_channels else self.channels(high=max_channels)
        else:
            layer["multiplier"] = 1 if keep_channels or c * 2 > max_channels else int(self.rng.integers(1, 3))
        return layer

    def concat(self, shape: tuple[int, ...]) -> dict:
        """Inception-like parallel branches keeping H and W (or DenseNet-like: x and a branch)."""
        c = shape[-1]
        count = int(self.rng.integers(2, 4))
        identity = c < MAX_CHANNELS // 2 and self.chance(0.3)
        budget = (MAX_CHANNELS - (c if identity else 0)) // (count - identity)
        branches = [[]] if identity else []
        for _ in range(count - identity):
            roll = self.rng.random()
            if roll < 0.55:
                branch = [self.conv_like(shape, op="conv", stride=1, padding="same", max_channels=budget)]
            else:  # a pool, a depthwise or a wide convolution, then a 1x1 convolution to the branch's width
                first = self.pool(shape, stride=1, padding="same") if roll < 0.75 else \
                    self.conv_like(shape, stride=1, padding="same")
                branch = [first, self.conv_like(shape, op="conv", kernel=1, stride=1, padding="same",
                                                max_channels=budget)]
            if self.chance(0.2):  # a squashed branch: requantized to be concatenated
                branch[-1]["activation"] = self.pick(["tanh", "sigmoid"])
            branches.append(branch)
        return {"op": "concat", "branches": branches, "activation": self.pick({None: 4, "relu": 1, "relu6": 1})}


def sample_architecture(rng: np.random.Generator, bounds: Bounds, max_tries: int = MAX_TRIES) -> tuple[dict, SpecCost]:
    """Draw specs until one fits the bounds; deterministic for a given generator state.

    After `max_tries` misses, raises HwbenchError naming the bounds no model met, with the closest
    value seen.
    """
    sampler = Sampler(rng)
    best: dict[str, int] = {}  # per bound, the value closest to meeting it
    for _ in range(max_tries):
        arch, builder = sampler.architecture()
        cost = graph_spec_cost(builder.graph())
        broken = bounds.violations(cost)
        if not broken:
            return arch, cost
        for name in ("macs", "weight_bytes", "peak_bytes"):
            value = getattr(cost, name)
            best[f"max_{name}"] = min(best.get(f"max_{name}", value), value)
        best["min_macs"] = max(best.get("min_macs", cost.macs), cost.macs)
    raise HwbenchError(f"no random model met the bounds in {max_tries} tries: {_misses(bounds, best)}; "
                       f"widen the bounds")


def _misses(bounds: Bounds, best: dict[str, int]) -> str:
    """The bounds no single model met, each with the closest value seen."""
    misses = []
    if best["min_macs"] < bounds.min_macs:
        misses.append(f"MACs at least {bounds.min_macs:,} (the most seen: {best['min_macs']:,})")
    for name, what, unit, least in (("macs", "MACs", "", "fewest"), ("weight_bytes", "weights", " B", "smallest"),
                                    ("peak_bytes", "peak memory", " B", "smallest")):
        limit, closest = getattr(bounds, f"max_{name}"), best[f"max_{name}"]
        if closest > limit:
            misses.append(f"{what} at most {limit:,}{unit} (the {least} seen: {closest:,}{unit})")
    return "; ".join(misses) or "each bound was met by some model, but no model met all of them at once"
