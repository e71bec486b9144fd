"""Loss kernels, and the fused softmax + negative log-likelihood.

``Softmax -> NegativeLogLikelihoodLoss`` computes ``-log(softmax(z)[y])``; fused, it becomes
``log_softmax`` + ``nll_loss`` with the closed-form gradient ``(softmax(z) - onehot(y)) / n``:
two kernels forward and two backward instead of softmax, gather, log, mean and their four
backward steps, and no ``log`` of an underflowed probability.

ATen's log-softmax along the last axis is slow for few classes; over many rows the kernel
works on the transposed logits instead (measured: 28 us against 43 us forward and backward for
256 rows of 10 classes; slower below about 100 rows).
"""
from __future__ import annotations

import torch

from ..nodes import losses as nodes
from .kernel import Binding, Kernel, accumulate, register

aten = torch.ops.aten
_MEAN = 1  # ATen's reduction code for 'mean'
_NO_IGNORE = -100  # ATen's default ignore_index; class indices are never negative
TRANSPOSED_ROWS = 128  # log-softmax over the class axis of transposed logits from here on
TRANSPOSED_CLASSES = 64

_ONES: dict[tuple, torch.Tensor] = {}  # the loss gradient 1.0, one per dtype and device


def _scalar_grad(grad, like: torch.Tensor) -> torch.Tensor:
    """A scalar gradient (maybe a Python float) as a 0-d tensor on ``like``'s device."""
    if isinstance(grad, torch.Tensor):
        return grad
    if grad == 1.0:
        key = (like.dtype, like.device)
        one = _ONES.get(key)
        if one is None:
            one = _ONES[key] = torch.ones((), dtype=like.dtype, device=like.device)
        return one
    return torch.full((), grad, dtype=like.dtype, device=like.device)


def _transposed(logits: torch.Tensor) -> bool:
    return logits.shape[0] >= TRANSPOSED_ROWS and logits.shape[1] <= TRANSPOSED_CLASSES


def _index(v, slot: int) -> torch.Tensor:
    index = v[slot]
    return index if index.dtype == torch.int64 else index.long()


@register(nodes.NegativeLogLikelihoodLoss, nodes.NegativeLogLikelihood,
          nodes.CategoricalCrossEntropy)
class NegativeLogLikelihood(Kernel):
    """``-mean(log(likelihoods[i, index[i]]))`` on probabilities (when not fused)."""

    grad_ports = frozenset({"likelihoods"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.p, self.i = b.ins["likelihoods"], b.ins["index"]
        self.y = b.outs["output"]
        self.picked = b.private() if b.saves else None
        self.index = b.private() if b.saves else None

    def forward(self, v, training):
        index = _index(v, self.i).unsqueeze(1)
        picked = v[self.p].gather(1, index)
        v[self.y] = -torch.log(picked).mean()
        if self.picked is not None:
            v[self.picked], v[self.index] = picked, index

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        p, picked = v[self.p], v[self.picked]
        grad = torch.zeros_like(p).scatter_(1, v[self.index], (-dy / p.shape[0]) / picked)
        accumulate(g, self.p, grad)


@register(nodes.SoftmaxCrossEntropyLoss)
class SoftmaxNLL(Kernel):
    """``nll(softmax(logits), index)`` as log-softmax + NLL: the kernel of
    `SoftmaxCrossEntropyLoss`, and of a softmax feeding an NLL loss once fused (then it also
    writes the probabilities when a graph output asks for them, ``outs['probs']``)."""

    grad_ports = frozenset({"logits"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.i = b.ins["logits"], b.ins["index"]
        self.y = b.outs["output"]
        self.probs = b.outs.get("probs")
        self.saved = (b.private(), b.private(), b.private()) if b.saves else None

    def forward(self, v, training):
        index = _index(v, self.i)
        z = v[self.x]
        if _transposed(z):
            logp = torch.log_softmax(z.t(), 0).t()
        else:
            logp = torch.log_softmax(z, 1)
        v[self.y], total = aten.nll_loss_forward.default(logp, index, None, _MEAN, _NO_IGNORE)
        if self.probs is not None:
            v[self.probs] = torch.exp(logp)
        if self.saved is not None:
            s_logp, s_index, s_total = self.saved
            v[s_logp], v[s_index], v[s_total] = logp, index, total

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        s_logp, s_index, s_total = self.saved
        logp = v[s_logp]
        dlogp = aten.nll_loss_backward.default(_scalar_grad(dy, logp), logp, v[s_index], None,
                                               _MEAN, _NO_IGNORE, v[s_total])
        if _transposed(logp):
            dz = torch._log_softmax_backward_data(dlogp.t(), logp.t(), 0, logp.dtype).t()
        else:
            dz = torch._log_softmax_backward_data(dlogp, logp, 1, logp.dtype)
        accumulate(g, self.x, dz)


@register(nodes.WeightDecayPenalty)
class WeightDecayPenalty(Kernel):
    """``weight * sum(input ** 2)``, with ``weight`` from the config."""

    grad_ports = frozenset({"input"})

    @classmethod
    def supports(cls, node, in_shapes):
        if node.settings.get("weight") is None:
            return "its weight is fed by a port"
        return None

    @classmethod
    def decay(cls, node):
        return {"input": 2.0 * float(node.settings["weight"])}

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.weight = float(b.node.settings["weight"])

    def forward(self, v, training):
        x = v[self.x].reshape(-1)
        v[self.y] = self.weight * torch.dot(x, x)  # one pass, no squared copy

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            accumulate(g, self.x, v[self.x] * (2.0 * self.weight * dy))
