"""Loss kernels, and the fused softmax + negative log-likelihood.

``Softmax -> NegativeLogLikelihoodLoss`` computes ``-log(softmax(z)[y])``; fused, it becomes
``log_softmax`` + ``nll_loss`` with the closed-form gradient ``(softmax(z) - onehot(y)) / n``:
two kernels forward and two backward instead of softmax, gather, log, mean and their four
backward steps, and no ``log`` of an underflowed probability.
"""
from __future__ import annotations

import torch

from ..nodes import losses as nodes
from .kernel import Binding, Kernel, accumulate, register

aten = torch.ops.aten
_MEAN = 1  # ATen's reduction code for 'mean'
_NO_IGNORE = -100  # ATen's default ignore_index; class indices are never negative


def _as_tensor(grad, like: torch.Tensor) -> torch.Tensor:
    """A scalar gradient (maybe a Python float) as a 0-d tensor on ``like``'s device."""
    if isinstance(grad, torch.Tensor):
        return grad
    return torch.full((), grad, dtype=like.dtype, device=like.device)


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
        logp = torch.log_softmax(v[self.x], 1)
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
        dlogp = aten.nll_loss_backward.default(_as_tensor(dy, logp), logp, v[s_index], None,
                                               _MEAN, _NO_IGNORE, v[s_total])
        accumulate(g, self.x, torch._log_softmax_backward_data(dlogp, logp, 1, logp.dtype))


@register(nodes.WeightDecayPenalty)
class WeightDecayPenalty(Kernel):
    """``weight * sum(input ** 2)``, with ``weight`` from the config."""

    grad_ports = frozenset({"input"})

    @classmethod
    def supports(cls, node, in_shapes):
        return node.settings.get("weight") is not None  # a weight fed by a port: reference

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.weight = float(b.node.settings["weight"])

    def forward(self, v, training):
        v[self.y] = self.weight * v[self.x].pow(2).sum()

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            accumulate(g, self.x, v[self.x] * (2.0 * self.weight * dy))
