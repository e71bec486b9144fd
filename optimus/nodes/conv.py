"""Convolution nodes."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F

from ..ports import as_shape
from .activations import activation
from .base import Node

BORDER_MODES = ("valid", "same", "full")


def pair(node: Node, field: str, value: Sequence[int]) -> tuple[int, int]:
    """Check a 2-tuple of positive ints (a pool, stride or kernel size)."""
    shape = as_shape(value, node.name, field, scalar_ok=False)
    if len(shape) != 2 or None in shape:
        raise node.config_error(field, f"must be two positive ints, got {value!r}")
    return shape


class Conv3D(Node):
    """2-D convolution of a 4-D input, with optional max-pooling, then an activation.

    The name is the original library's: the kernels are 3-D, ``(maps_in, h, w)``.

    Args:
        input_shape: ``(batch, maps_in, height, width)``.
        weight_shape: ``(maps_out, maps_in, h, w)``.
        pool_shape: max-pooling window (and stride) applied after the convolution.
        downsample_shape: the convolution's stride.
        border_mode: 'valid' (no padding), 'same' (output as large as the input) or 'full'
            (padding ``kernel - 1`` on each side).
        act_type: linear, relu, sigmoid, tanh, ...

    Parameters: ``weights`` ``(maps_out, maps_in, h, w)``, ``bias`` ``(maps_out,)``.
    """

    def __init__(self, name: str, input_shape: Sequence[int | None],
                 weight_shape: Sequence[int], pool_shape: Sequence[int] = (1, 1),
                 downsample_shape: Sequence[int] = (1, 1), border_mode: str = "valid",
                 act_type: str = "relu"):
        super().__init__(name, input_shape=input_shape, weight_shape=weight_shape,
                         pool_shape=pool_shape, downsample_shape=downsample_shape,
                         border_mode=border_mode, act_type=act_type)
        in_shape = as_shape(input_shape, name, "input_shape", scalar_ok=False)
        w_shape = as_shape(weight_shape, name, "weight_shape", scalar_ok=False)
        if len(in_shape) != 4:
            raise self.config_error("input_shape", f"must be (batch, maps, height, width), "
                                    f"got {input_shape!r}")
        if len(w_shape) != 4 or None in w_shape:
            raise self.config_error("weight_shape", f"must be (maps_out, maps_in, h, w), "
                                    f"got {weight_shape!r}")
        if w_shape[1] != in_shape[1]:
            raise self.config_error("weight_shape", f"has {w_shape[1]} input maps but "
                                    f"input_shape has {in_shape[1]}")
        if border_mode not in BORDER_MODES:
            raise self.config_error("border_mode", f"{border_mode!r} is unknown; use one of "
                                    f"{', '.join(BORDER_MODES)}")
        self.pool = pair(self, "pool_shape", pool_shape)
        self.stride = pair(self, "downsample_shape", downsample_shape)
        if border_mode == "same" and self.stride != (1, 1):
            raise self.config_error("border_mode", "'same' needs downsample_shape (1, 1)")
        kh, kw = w_shape[2:]
        self.padding = {"valid": 0, "same": "same", "full": (kh - 1, kw - 1)}[border_mode]
        self.act = activation(self, act_type)
        self.add_param("weights", w_shape)
        self.add_param("bias", w_shape[:1])
        self.declared_output_shapes()  # a kernel larger than the padded input fails here

    def forward(self, inputs, params, training=False):
        z = F.conv2d(inputs["input"], params["weights"], params["bias"],
                     stride=self.stride, padding=self.padding)
        if self.pool != (1, 1):
            z = F.max_pool2d(z, self.pool)
        return self.act(z)
