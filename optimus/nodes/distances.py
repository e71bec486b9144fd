"""Distances between two inputs: Euclidean, SquaredEuclidean (see RadialBasis for a distance to
learned centres)."""
from __future__ import annotations

import torch

from .base import Node, Tensor


def _per_sample(in_shapes) -> bool:
    """Row-wise when both inputs are known to have a batch axis and more (vectors give a
    scalar)."""
    shapes = (in_shapes.get("input_a"), in_shapes.get("input_b"))
    return all(s is not None and len(s) >= 2 for s in shapes)


def _squared(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample ``sum((a - b) ** 2)`` over all axes but the first; a scalar for vectors."""
    diff = a - b
    if diff.dim() >= 2:
        return diff.flatten(1).pow(2).sum(dim=1)
    return diff.pow(2).sum()


class Euclidean(Node):
    """``sqrt(sum((a - b) ** 2))`` per sample: ``(batch, ...)`` pairs give ``(batch,)``; two
    vectors give a scalar."""

    input_names = ("input_a", "input_b")

    def __init__(self, name: str):
        super().__init__(name)

    def rowwise_for(self, in_shapes):
        return _per_sample(in_shapes)

    def forward(self, inputs, params, training=False):
        return torch.sqrt(_squared(inputs["input_a"], inputs["input_b"]))


class SquaredEuclidean(Node):
    """``sum((a - b) ** 2)`` per sample: ``(batch, ...)`` pairs give ``(batch,)``; two vectors
    give a scalar."""

    input_names = ("input_a", "input_b")

    def __init__(self, name: str):
        super().__init__(name)

    def rowwise_for(self, in_shapes):
        return _per_sample(in_shapes)

    def forward(self, inputs, params, training=False):
        return _squared(inputs["input_a"], inputs["input_b"])
