"""Fully-connected nodes."""
from __future__ import annotations

import math
from collections.abc import Sequence

from ..ports import Shape, as_shape
from .activations import activation
from .base import Node


class Affine(Node):
    """``act(flatten(x) @ weights + bias)``: a fully-connected layer.

    Args:
        input_shape: e.g. ``(None, 15, 10, 10)``; all axes after the first are flattened.
        output_shape: ``(None, n_out)``.
        act_type: linear, relu, sigmoid, tanh, softmax, ...

    Parameters: ``weights`` of shape ``(n_in, n_out)``, ``bias`` of shape ``(n_out,)``.
    """

    def __init__(self, name: str, input_shape: Sequence[int | None],
                 output_shape: Sequence[int | None], act_type: str = "relu"):
        super().__init__(name, input_shape=input_shape, output_shape=output_shape,
                         act_type=act_type)
        in_shape = as_shape(input_shape, name, "input_shape", scalar_ok=False)
        out_shape = as_shape(output_shape, name, "output_shape", scalar_ok=False)
        if len(in_shape) < 2:
            raise self.config_error("input_shape", f"must be (batch, ...), got {input_shape!r}")
        if len(out_shape) != 2:
            raise self.config_error("output_shape", f"must be (batch, n_out), got "
                                    f"{output_shape!r}")
        self.act = activation(self, act_type)
        n_in = math.prod(in_shape[1:])
        self.add_param("weights", (n_in, out_shape[1]))
        self.add_param("bias", (out_shape[1],))

    def accepts(self, port: str, shape: Shape) -> bool:
        # Any input with the right number of values per sample: it is flattened anyway.
        return len(shape) >= 2 and math.prod(shape[1:]) == self.params["weights"].shape[0]

    def forward(self, inputs, params, training=False):
        x = inputs["input"].flatten(1)
        return self.act(x @ params["weights"] + params["bias"])
