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

from .. import compat
from ..nodes import losses as nodes
from .kernel import Binding, Kernel, accumulate, register, scalar

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
        v[self.y], total = compat.nll_loss_forward(logp, index)
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
        dlogp = compat.nll_loss_backward(_scalar_grad(dy, logp), logp, v[s_index], v[s_total])
        if _transposed(logp):
            dz = compat.log_softmax_backward(dlogp.t(), logp.t(), 0).t()
        else:
            dz = compat.log_softmax_backward(dlogp, logp, 1)
        accumulate(g, self.x, dz)


@register(nodes.WeightDecayPenalty)
class WeightDecayPenalty(Kernel):
    """Both forms of `optimus.WeightDecayPenalty` (its `PenaltySpec`), the weight from the
    config or from the ``weight`` port.

    'sum_squares' with a config weight is an L2 penalty (`Kernel.decay`): the planner may fold
    its gradient into a fused SGD update of the parameter it reads.
    """

    grad_ports = frozenset({"input", "weight"})

    @classmethod
    def decay(cls, node):
        spec = node.spec
        if spec.form != "sum_squares" or spec.weight is None:
            return {}
        return {"input": 2.0 * float(spec.weight)}

    def __init__(self, b: Binding):
        super().__init__(b)
        spec = b.node.spec
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.w = b.ins.get("weight")  # the weight port's slot, when it is one
        self.weight = None if spec.weight is None else float(spec.weight)
        self.squares = spec.form == "sum_squares"
        self.norms = b.private() if b.saves and not self.squares else None

    def _weight(self, v):
        return self.weight if self.w is None else v[self.w]

    def _value(self, v):
        """The unscaled penalty: ``sum(x ** 2)`` or the mean row norm."""
        x = v[self.x]
        if self.squares:
            flat = x.reshape(-1)
            return torch.dot(flat, flat)  # one pass, no squared copy
        norms = torch.linalg.vector_norm(x.reshape(x.shape[0] if x.dim() else 1, -1), dim=1)
        if self.norms is not None:
            v[self.norms] = norms
        return norms.mean()

    def forward(self, v, training):
        value = self._value(v)  # a fresh 0-d tensor
        v[self.y] = (value.mul_(scalar(self.weight, value)) if self.w is None
                     else v[self.w] * value)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        x, weight = v[self.x], self._weight(v)
        if "input" in self.need:
            if self.squares:
                factor = 2.0 * weight * dy
                grad = x * (scalar(factor, x) if isinstance(factor, float) else factor)
            else:  # d mean_i ||x_i|| = x_i / (n ||x_i||), 0 for an all-zero row
                norms = v[self.norms]
                rows = x.reshape(norms.shape[0], -1)
                scale = torch.where(norms > 0, (weight * dy / norms.shape[0]) / norms, 0.0)
                grad = (rows * scale.unsqueeze(1)).reshape(x.shape)
            accumulate(g, self.x, grad)
        if self.w is not None and "weight" in self.need:
            accumulate(g, self.w, dy * (self._value(v) if self.squares else v[self.norms].mean()))
