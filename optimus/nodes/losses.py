"""Losses: nodes whose ``output`` is a scalar to minimise."""
from __future__ import annotations

import torch

from .base import Node


class NegativeLogLikelihoodLoss(Node):
    """Mean of ``-log(likelihoods[i, index[i]])``: the loss of a 1-of-K classifier.

    Ports: ``likelihoods`` ``(batch, classes)`` probabilities, ``index`` ``(batch,)`` ints,
    ``output`` a scalar.
    """

    input_names = ("likelihoods", "index")
    input_dtypes = {"index": "int64"}

    def __init__(self, name: str):
        super().__init__(name)

    def forward(self, inputs, params, training=False):
        index = inputs["index"].long().unsqueeze(1)
        picked = inputs["likelihoods"].gather(1, index)
        return -torch.log(picked).mean()
