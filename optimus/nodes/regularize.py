"""Nodes that behave differently while training: Dropout, GaussianNoise, BatchNorm.

"Training" means a graph call that takes an update step (a graph with a loss and updates,
called with a non-zero learning rate): the node's ``forward`` then gets ``training=True``.
Every other call (a predictor graph, a learning rate of 0, shape inference) gets
``training=False``. Nodes shared by a trainer and a predictor graph follow each call.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import draws
from ..ports import as_shape
from . import checks
from .base import Node, shape_config
from .specs import BatchNormSpec, DropoutSpec, NoiseSpec


class Dropout(Node):
    """Zero each value with probability ``rate`` while training, scaling the rest by
    ``1 / (1 - rate)``; the identity otherwise.

    Args:
        rate: in [0, 1).
        input_shape: optional; then ``output.shape`` is known when the node is built.
    """

    always_rowwise = True
    preserves_shape = True
    _spec: DropoutSpec

    def __init__(self, name: str, rate: float = 0.5,
                 input_shape: Sequence[int | None] | None = None):
        super().__init__(name, rate=rate, **shape_config(input_shape))
        self._spec = DropoutSpec(checks.number(self, "rate", rate, minimum=0.0, maximum=1.0,
                                               below_max=True))

    def forward(self, inputs, params, training=False):
        x, rate = inputs["input"], self._spec.rate
        if not training or rate == 0.0:
            return x
        return x * draws.dropout_mask(x, rate)  # F.dropout's own product and draws


class GaussianNoise(Node):
    """Add ``N(0, std**2)`` noise to each value while training; the identity otherwise.

    Args:
        std: the noise's standard deviation (>= 0).
        input_shape: optional, e.g. ``(None, 1, 28, 28)``; then ``output.shape`` is known
            when the node is built and can feed ``Conv2D(input_shape=noise.output.shape)``.
    """

    always_rowwise = True
    preserves_shape = True
    _spec: NoiseSpec

    def __init__(self, name: str, std: float, input_shape: Sequence[int | None] | None = None):
        super().__init__(name, std=std, **shape_config(input_shape))
        self._spec = NoiseSpec(checks.number(self, "std", std, minimum=0.0))

    def forward(self, inputs, params, training=False):
        x = inputs["input"]
        return x + self._spec.std * draws.randn_like(x) if training else x


class BatchNorm(Node):
    """Batch normalisation over axis 1: ``gamma * (x - mean) / sqrt(var + epsilon) + beta``.

    While training, ``mean`` and ``var`` are the batch's (over every axis but 1), and the
    running statistics move towards them: ``running = (1 - momentum) * running + momentum *
    batch`` (PyTorch's convention; the running variance is the unbiased one). Otherwise the
    running statistics are used.

    Args:
        input_shape: ``(batch, features)`` or ``(batch, maps, ...)``.
        momentum: in (0, 1], the weight of each new batch in the running statistics.
        epsilon: added to the variance.

    Parameters: ``gamma`` (starts at 1), ``beta`` (0), and the non-trainable ``running_mean``
    (0) and ``running_var`` (1), all ``(features,)``; all are saved with the graph.
    """

    param_shapes = {"gamma": "(features,)", "beta": "(features,)",
                    "running_mean": "(features,) not trained",
                    "running_var": "(features,) not trained"}
    always_rowwise = True  # without update, the running statistics: row by row
    preserves_shape = True
    _spec: BatchNormSpec

    def __init__(self, name: str, input_shape: Sequence[int | None], momentum: float = 0.1,
                 epsilon: float = 1e-5):
        super().__init__(name, input_shape=input_shape, momentum=momentum, epsilon=epsilon)
        shape = as_shape(input_shape, name, "input_shape", scalar_ok=False)
        if shape is None or len(shape) < 2:
            raise self.config_error("input_shape", f"must be (batch, features, ...), got "
                                    f"{input_shape!r}")
        self._spec = BatchNormSpec(
            checks.number(self, "momentum", momentum, minimum=0.0, strict=True, maximum=1.0),
            checks.number(self, "epsilon", epsilon, minimum=0.0, strict=True))
        features = (shape[1],)
        with torch.no_grad():  # filled in place: no full-size temporary
            self.add_param("gamma", features).tensor.fill_(1.0)
        self.add_param("beta", features)
        self.add_param("running_mean", features, trainable=False)
        with torch.no_grad():
            self.add_param("running_var", features, trainable=False).tensor.fill_(1.0)

    def static_shape_ok(self, shape):
        return len(shape) >= 2 and shape[1] == self.params["gamma"].shape[0]

    def training_rows(self, in_shapes):
        """2 when each channel has one value per row (a ``(batch, features)`` input): batch
        statistics need two values per channel."""
        shape = in_shapes.get("input")
        return 2 if shape is not None and math.prod(shape[2:]) == 1 else 1

    def forward(self, inputs, params, training=False):
        return F.batch_norm(inputs["input"], params["running_mean"], params["running_var"],
                            params["gamma"], params["beta"], training=training,
                            momentum=self._spec.momentum, eps=self._spec.epsilon)
