"""Convolution nodes: Conv3D (the original library's, with optional pooling) and Conv2D
(the modern spelling: filters, kernel size, padding, stride)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F

from ..ports import as_shape
from . import checks
from .activations import activation
from .base import Node
from .specs import ConvSpec

BORDER_MODES = ("valid", "same", "full")


class _Conv(Node, register=False):
    """2-D convolution of ``(batch, maps_in, h, w)`` by ``weights`` ``(maps_out, maps_in, kh,
    kw)`` plus ``bias``, an activation, and an optional max-pooling."""

    param_shapes = {"weights": "(maps_out, maps_in, kh, kw)", "bias": "(maps_out,)"}
    always_rowwise = True
    _spec: ConvSpec

    def _setup(self, input_shape, weight_shape: tuple[int, ...], padding: Any,
               stride: tuple[int, int], pool: tuple[int, int], act_type: str) -> None:
        """Check the shapes and padding; create the parameters and the spec; infer the output
        shape."""
        if weight_shape[1] != input_shape[1]:
            raise self.config_error("weight_shape", f"has {weight_shape[1]} input maps but "
                                    f"input_shape has {input_shape[1]}")
        kh, kw = weight_shape[2:]
        pre_pad = None
        if padding == "full":
            padding = (kh - 1, kw - 1)
        elif padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise self.config_error("stride", "must be 1 with 'same' padding")
            # Total padding kernel - 1, the odd pixel after (PyTorch's convention). An even
            # kernel needs an asymmetric pad, done explicitly since F.conv2d(padding='same')
            # warns of it.
            before = ((kh - 1) // 2, (kw - 1) // 2)
            after = (kh - 1 - before[0], kw - 1 - before[1])
            if after == before:
                padding = before
            else:
                pre_pad, padding = (before[1], after[1], before[0], after[0]), (0, 0)
        self._spec = ConvSpec(tuple(padding), pre_pad, stride, pool, activation(self, act_type))
        self.add_param("weights", weight_shape)
        self.add_param("bias", weight_shape[:1])
        self.declared_output_shapes()  # a kernel larger than the padded input fails here

    def forward(self, inputs, params, training=False):
        spec, x = self._spec, inputs["input"]
        if spec.pre_pad is not None:
            x = F.pad(x, spec.pre_pad)
        z = F.conv2d(x, params["weights"], params["bias"], stride=spec.stride,
                     padding=spec.padding)
        if not spec.pools:
            return spec.activation(z)
        if spec.pool_first:  # same result, activation on the smaller tensor
            return spec.activation(F.max_pool2d(z, spec.pool))
        return F.max_pool2d(spec.activation(z), spec.pool)


def _input_shape(node: Node, input_shape) -> tuple:
    shape = as_shape(input_shape, node.name, "input_shape", scalar_ok=False)
    if shape is None or len(shape) != 4:
        raise node.config_error("input_shape", f"must be (batch, maps, height, width), got "
                                f"{input_shape!r}")
    return shape


def _padding(node: Node, field: str, value: Any):
    """'valid', 'same', 'full', or pixels per side: an int or a pair."""
    if isinstance(value, str):
        return checks.choice(node, field, value, BORDER_MODES)
    return checks.pair(node, field, value, minimum=0)


class Conv3D(_Conv):
    """2-D convolution of a 4-D input, an activation, then optional max-pooling.

    The name is the original library's: the kernels are 3-D, ``(maps_in, h, w)``.

    Args:
        input_shape: ``(batch, maps_in, height, width)``.
        weight_shape: ``(maps_out, maps_in, h, w)``; ``(maps_out, h, w)`` or a None
            ``maps_in`` takes the input's maps, as the original did.
        pool_shape: max-pooling window (and stride) applied after the activation; a partial
            window at the border is dropped.
        downsample_shape: the convolution's stride.
        border_mode: 'valid' (no padding), 'same' (output as large as the input; needs stride
            1) or 'full' (padding ``kernel - 1`` on each side).
        act_type: linear, relu, sigmoid, tanh, ...
        padding: pixels of zero padding per side (an int or a pair) instead of border_mode.
        stride: the convolution's stride, the modern name of downsample_shape.

    Parameters: ``weights`` ``(maps_out, maps_in, h, w)``, ``bias`` ``(maps_out,)``.
    """

    def __init__(self, name: str, input_shape: Sequence[int | None],
                 weight_shape: Sequence[int | None], pool_shape: Sequence[int] = (1, 1),
                 downsample_shape: Sequence[int] = (1, 1), border_mode: str = "valid",
                 act_type: str = "relu", padding: int | Sequence[int] | None = None,
                 stride: int | Sequence[int] | None = None):
        config = dict(input_shape=input_shape, weight_shape=weight_shape, pool_shape=pool_shape,
                      downsample_shape=downsample_shape, border_mode=border_mode,
                      act_type=act_type)
        if padding is not None:
            config["padding"] = padding
        if stride is not None:
            config["stride"] = stride
        super().__init__(name, **config)
        in_shape = _input_shape(self, input_shape)
        w_shape = list(weight_shape) if isinstance(weight_shape, Sequence) else weight_shape
        if isinstance(w_shape, list) and len(w_shape) == 3:
            w_shape.insert(1, in_shape[1])
        elif isinstance(w_shape, list) and len(w_shape) == 4 and w_shape[1] is None:
            w_shape[1] = in_shape[1]
        w_shape = as_shape(w_shape, name, "weight_shape", scalar_ok=False)
        if w_shape is None or len(w_shape) != 4 or None in w_shape:
            raise self.config_error("weight_shape", f"must be (maps_out, maps_in, h, w), "
                                    f"got {weight_shape!r}")
        checks.choice(self, "border_mode", border_mode, BORDER_MODES)
        pool = checks.pair(self, "pool_shape", pool_shape)
        step = checks.pair(self, "downsample_shape", downsample_shape)
        if stride is not None:
            if step != (1, 1):
                raise self.config_error("stride", "is the same as downsample_shape; give one")
            step = checks.pair(self, "stride", stride)
        pad = border_mode
        if padding is not None:
            if border_mode != "valid":
                raise self.config_error("padding", f"conflicts with border_mode "
                                        f"{border_mode!r}; give one of them")
            pad = checks.pair(self, "padding", padding, minimum=0)
        if pad == "same" and step != (1, 1):
            raise self.config_error("border_mode", "'same' needs downsample_shape (1, 1)")
        self._setup(in_shape, w_shape, pad, step, pool, act_type)


class Conv2D(_Conv):
    """2-D convolution with padding and stride, then an activation (pool with MaxPool/AvgPool).

    Args:
        input_shape: ``(batch, maps_in, height, width)``.
        num_filters, kernel_size: the output maps and the kernel (an int or a pair);
            or give ``weight_shape`` ``(maps_out, maps_in, h, w)`` instead.
        padding: zero pixels per side (an int or a pair), or 'valid' (0), 'same' (output as
            large as the input; needs stride 1) or 'full' (``kernel - 1``).
        stride: an int or a pair.
        act_type: linear, relu, sigmoid, tanh, ...

    Parameters: ``weights`` ``(maps_out, maps_in, h, w)``, ``bias`` ``(maps_out,)``.
    """

    def __init__(self, name: str, input_shape: Sequence[int | None],
                 num_filters: int | None = None, kernel_size: int | Sequence[int] | None = None,
                 weight_shape: Sequence[int] | None = None,
                 padding: int | Sequence[int] | str = 0, stride: int | Sequence[int] = 1,
                 act_type: str = "relu"):
        config = dict(input_shape=input_shape)
        if weight_shape is not None:
            config["weight_shape"] = weight_shape
        if num_filters is not None:
            config["num_filters"] = num_filters
        if kernel_size is not None:
            config["kernel_size"] = kernel_size
        super().__init__(name, **config, padding=padding, stride=stride, act_type=act_type)
        in_shape = _input_shape(self, input_shape)
        if weight_shape is not None:
            if num_filters is not None or kernel_size is not None:
                raise self.config_error("weight_shape", "replaces num_filters and kernel_size; "
                                        "give one or the other")
            w_shape = as_shape(weight_shape, name, "weight_shape", scalar_ok=False)
            if w_shape is None or len(w_shape) != 4 or None in w_shape:
                raise self.config_error("weight_shape", f"must be (maps_out, maps_in, h, w), "
                                        f"got {weight_shape!r}")
        else:
            if num_filters is None or kernel_size is None:
                raise self.config_error("num_filters", "and kernel_size are both needed "
                                        "(or give weight_shape)")
            filters = checks.integer(self, "num_filters", num_filters, minimum=1)
            w_shape = (filters, in_shape[1], *checks.pair(self, "kernel_size", kernel_size))
        pad = _padding(self, "padding", padding)
        self._setup(in_shape, w_shape, pad, checks.pair(self, "stride", stride), (1, 1),
                    act_type)
