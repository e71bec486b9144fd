"""Nodes with learned weights and no spatial structure: Affine, CenteredAffine, RadialBasis,
Multiply, Constant."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from ..ports import Shape, as_shape
from .activations import activation
from .base import Node, Tensor
from .specs import DenseSpec


class _Dense(Node, register=False):
    """A map from the flattened input ``(batch, n_in)`` to ``(batch, *output_shape[1:])``."""

    param_shapes: ClassVar[dict[str, str]] = {}
    always_rowwise = True

    def _shapes(self, input_shape, output_shape) -> tuple[int, int]:
        """Check both shapes; return ``(n_in, n_out)``."""
        in_shape = as_shape(input_shape, self.name, "input_shape", scalar_ok=False)
        out_shape = as_shape(output_shape, self.name, "output_shape", scalar_ok=False)
        if in_shape is None or len(in_shape) < 2:
            raise self.config_error("input_shape", f"must be (batch, ...), got {input_shape!r}")
        if out_shape is None or len(out_shape) < 2:
            raise self.config_error("output_shape", f"must be (batch, n_out, ...), got "
                                    f"{output_shape!r}")
        self._out_dims = tuple(out_shape[1:])
        return math.prod(in_shape[1:]), math.prod(self._out_dims)

    def accepts(self, port: str, shape: Shape) -> bool:
        # Any input with the right number of values per sample: it is flattened anyway.
        return len(shape) >= 2 and math.prod(shape[1:]) == self.params["weights"].shape[0]

    def static_infer(self, input_shapes, input_dtypes):
        """``(batch, *output_shape[1:])`` for a float32 input it accepts: no probe needed."""
        shape = input_shapes.get("input")
        if (type(self).forward is not _Affine.forward or shape is None
                or (input_dtypes.get("input") or "float32") != "float32"
                or not self.accepts("input", shape)):
            return None
        return {"output": ((shape[0],) + self._out_dims, "float32")}

    def unflatten(self, z: Tensor) -> Tensor:
        dims = self._out_dims
        return z if len(dims) == 1 else z.reshape((z.shape[0],) + dims)


class _Affine(_Dense, register=False):
    """Affine and CenteredAffine: one constructor, one forward, told apart by ``centered``."""

    centered: ClassVar[bool] = False
    _spec: DenseSpec

    def __init__(self, name: str, input_shape: Sequence[int | None],
                 output_shape: Sequence[int | None], act_type: str = "relu"):
        super().__init__(name, input_shape=input_shape, output_shape=output_shape,
                         act_type=act_type)
        n_in, n_out = self._shapes(input_shape, output_shape)
        self._spec = DenseSpec(activation(self, act_type), self._out_dims, self.centered)
        self.add_param("weights", (n_in, n_out))
        self.add_param("bias", (n_in,) if self.centered else (n_out,))

    def forward(self, inputs, params, training=False):
        x = inputs["input"].flatten(1)
        if self._spec.centered:
            z = (x - params["bias"]) @ params["weights"]
        else:
            z = x @ params["weights"] + params["bias"]
        return self.unflatten(self._spec.activation(z))


class Affine(_Affine):
    """``act(flatten(x) @ weights + bias)``: a fully-connected layer.

    Args:
        input_shape: e.g. ``(None, 15, 10, 10)``; all axes after the first are flattened.
        output_shape: ``(None, n_out)`` (more axes: the result is reshaped to them).
        act_type: an activation of `optimus.activations` (linear, relu, sigmoid, tanh,
            softmax, ...).

    Parameters: ``weights`` of shape ``(n_in, n_out)``, ``bias`` of shape ``(n_out,)``.
    """

    param_shapes = {"weights": "(n_in, n_out)", "bias": "(n_out,)"}


class CenteredAffine(_Affine):
    """``act((flatten(x) - bias) @ weights)``: the bias is subtracted before the projection.

    Args:
        input_shape, output_shape, act_type: as for Affine.

    Parameters: ``weights`` ``(n_in, n_out)``, ``bias`` ``(n_in,)``.
    """

    param_shapes = {"weights": "(n_in, n_out)", "bias": "(n_in,)"}
    centered = True


class RadialBasis(_Dense):
    """Squared Euclidean distance from each input to each of ``n_out`` learned centres:
    ``out[b, j] = sum_i (x[b, i] - weights[i, j]) ** 2``.

    Args:
        input_shape: ``(None, ...)``, flattened to ``n_in`` values per sample.
        output_shape: ``(None, n_out)``.

    Parameters: ``weights`` ``(n_in, n_out)``, one centre per column.
    """

    param_shapes = {"weights": "(n_in, n_out)"}

    def __init__(self, name: str, input_shape: Sequence[int | None],
                 output_shape: Sequence[int | None]):
        super().__init__(name, input_shape=input_shape, output_shape=output_shape)
        n_in, n_out = self._shapes(input_shape, output_shape)
        self.add_param("weights", (n_in, n_out))

    def forward(self, inputs, params, training=False):
        x, w = inputs["input"].flatten(1), params["weights"]
        # |x|^2 - 2 x.w + |w|^2: a matrix product instead of a (batch, n_in, n_out) difference.
        dist = (x * x).sum(1, keepdim=True) - 2.0 * (x @ w) + (w * w).sum(0)
        return self.unflatten(dist)


class Multiply(Node):
    """``x * weight`` elementwise with a learned ``weight`` (see Product for two inputs).

    Args:
        weight_shape: the weight's shape; it broadcasts against the input as in NumPy (axes
            aligned from the right, length-1 axes repeated).
        broadcast: the weight axes of length 1 that are meant to repeat (Theano needed them
            named; here it is checked).

    Parameters: ``weight`` of ``weight_shape``.
    """

    param_shapes = {"weight": "weight_shape"}

    def __init__(self, name: str, weight_shape: Sequence[int],
                 broadcast: Sequence[int] | None = None):
        super().__init__(name, weight_shape=weight_shape, broadcast=broadcast)
        shape = as_shape(weight_shape, name, "weight_shape", scalar_ok=False)
        if shape is None or None in shape:
            raise self.config_error("weight_shape", f"must be a tuple of positive ints, got "
                                    f"{weight_shape!r}")
        for axis in broadcast or ():
            if (isinstance(axis, bool) or not isinstance(axis, int)
                    or not -len(shape) <= axis < len(shape) or shape[axis] != 1):
                raise self.config_error("broadcast", f"must list axes of weight_shape "
                                        f"{tuple(shape)} that have length 1, got {broadcast!r}")
        self.add_param("weight", shape)

    def rowwise_for(self, in_shapes):
        # Row-wise when the weight does not reach the batch axis: fewer axes than the input,
        # or as many with a leading 1. Unknown input rank: not known to be.
        shape, weight = in_shapes.get("input"), self.params["weight"].shape
        if shape is None or len(weight) > len(shape):
            return False
        return len(weight) < len(shape) or weight[0] == 1

    def forward(self, inputs, params, training=False):
        return inputs["input"] * params["weight"]


class Constant(Node):
    """A node with no inputs whose ``output`` is its parameter ``data``.

    Args:
        shape: the shape of ``data`` (None for a scalar).

    Parameters: ``data`` of ``shape``.
    """

    input_names = ()
    param_shapes = {"data": "shape"}

    def __init__(self, name: str, shape: Sequence[int] | None):
        super().__init__(name, shape=shape)
        dims = as_shape(shape, name, "shape")
        if None in dims:
            raise self.config_error("shape", f"must be positive ints (no batch axis), got "
                                    f"{shape!r}")
        self.add_param("data", dims)

    def forward(self, inputs, params, training=False):
        return params["data"].clone()  # a copy: callers must not see the live parameter
