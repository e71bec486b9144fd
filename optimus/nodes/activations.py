"""The activation nodes (Sigmoid, Tanh, RectifiedLinear, SoftRectifiedLinear, Softmax,
LogSoftmax), and the ``act_type`` check shared by the nodes that take one.

The activations themselves are defined once, in `optimus.activations` (every ``act_type``
value is listed there); each node here describes its own with an `ActivationSpec`.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..activations import ACT_TYPES
from . import checks
from .base import Node, keeps_rows, shape_config
from .specs import ActivationSpec


def activation(node: Node, act_type: str) -> ActivationSpec:
    """The spec of ``act_type`` (along axis 1); an unknown name is a ConfigError naming the
    node and listing the known ones."""
    return ActivationSpec(checks.choice(node, "act_type", act_type, ACT_TYPES))


class _Activation(Node, register=False):
    """An activation node: ``output = spec(input)``, shaped like its input.

    Args:
        input_shape: optional, e.g. ``(None, 1, 28, 28)``: then ``output.shape`` is known
            when the node is built, and can feed the next node's ``input_shape``.
    """

    always_rowwise = True
    preserves_shape = True
    _spec: ActivationSpec

    def forward(self, inputs, params, training=False):
        return self._spec(inputs["input"])


class Sigmoid(_Activation):
    """The logistic function ``1 / (1 + exp(-x))``, elementwise."""

    def __init__(self, name: str, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, **shape_config(input_shape))
        self._spec = ActivationSpec("sigmoid")


class Tanh(_Activation):
    """The hyperbolic tangent, elementwise."""

    def __init__(self, name: str, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, **shape_config(input_shape))
        self._spec = ActivationSpec("tanh")


class RectifiedLinear(_Activation):
    """Half-wave rectification ``max(x, 0)``, elementwise."""

    def __init__(self, name: str, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, **shape_config(input_shape))
        self._spec = ActivationSpec("relu")


class SoftRectifiedLinear(_Activation):
    """Smooth rectification ``log(1 + exp(knee * x)) / knee``, elementwise.

    Args:
        knee: sharpness of the bend at 0 (> 0); larger is closer to ``max(x, 0)``.
    """

    def __init__(self, name: str, knee: float = 1.0,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, knee=knee, **shape_config(input_shape))
        knee = checks.number(self, "knee", knee, minimum=0.0, strict=True)
        self._spec = ActivationSpec("softplus", beta=knee)


class _AlongAxis(_Activation, register=False):
    """Softmax and LogSoftmax: an activation along one axis, row-wise unless that axis is the
    batch axis."""

    act_name = ""

    def __init__(self, name: str, axis: int = 1,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, axis=axis, **shape_config(input_shape))
        self._spec = ActivationSpec(self.act_name, axis=checks.integer(self, "axis", axis))
        checks.within(self, "axis", self._spec.axis)

    def rowwise_for(self, in_shapes):
        return keeps_rows(self._spec.axis, in_shapes.get("input"))

    def static_shape_ok(self, shape):
        return -len(shape) <= self._spec.axis < len(shape)


class Softmax(_AlongAxis):
    """Softmax over ``axis`` (default 1, the class axis of a ``(batch, classes)`` input)."""

    act_name = "softmax"


class LogSoftmax(_AlongAxis):
    """``log(softmax(x))`` over ``axis`` (default 1), computed stably from logits."""

    act_name = "log_softmax"
