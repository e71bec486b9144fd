"""Distances between two inputs: Euclidean, SquaredEuclidean (see RadialBasis for a distance to
learned centres)."""
from __future__ import annotations

import torch

from .base import Node, Tensor


class _Distance(Node, register=False):
    """A distance between two same-shaped inputs, per sample (over all axes but the first),
    or between two vectors (a scalar)."""

    input_names = ("input_a", "input_b")

    def __init__(self, name: str):
        super().__init__(name)

    def rowwise_for(self, in_shapes):
        # row-wise when both inputs are known to have a batch axis and more
        shapes = (in_shapes.get("input_a"), in_shapes.get("input_b"))
        return all(s is not None and len(s) >= 2 for s in shapes)

    def squared(self, inputs) -> Tensor:
        """Per-sample ``sum((a - b) ** 2)``; a scalar for vectors."""
        diff = inputs["input_a"] - inputs["input_b"]
        if diff.dim() >= 2:
            return diff.flatten(1).pow(2).sum(dim=1)
        return diff.pow(2).sum()


class Euclidean(_Distance):
    """``sqrt(sum((a - b) ** 2))`` per sample: ``(batch, ...)`` pairs give ``(batch,)``; two
    vectors give a scalar."""

    def forward(self, inputs, params, training=False):
        return torch.sqrt(self.squared(inputs))


class SquaredEuclidean(_Distance):
    """``sum((a - b) ** 2)`` per sample: ``(batch, ...)`` pairs give ``(batch,)``; two vectors
    give a scalar."""

    def forward(self, inputs, params, training=False):
        return self.squared(inputs)
