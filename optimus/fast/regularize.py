"""Kernels of the nodes that act only while training: GaussianNoise, Dropout, BatchNorm.

Random draws are the node's own (`optimus.draws`), in the same order and memory layout (the
default one, as the reference path sees it), so that a seeded run gives the same numbers on
both engines, and on N processes the numbers of one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import compat, draws
from ..nodes.regularize import BatchNorm as BatchNormNode
from ..nodes.regularize import Dropout as DropoutNode
from ..nodes.regularize import GaussianNoise as GaussianNoiseNode
from .kernel import Binding, Kernel, accumulate, param_grad, register, scalar


@register(GaussianNoiseNode)
class GaussianNoise(Kernel):
    """``x + std * N(0, 1)`` in training calls, the identity otherwise; the noise is drawn
    exactly as the node draws it, so both paths consume the same random numbers."""

    grad_ports = frozenset({"input"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.std = b.node.spec.std

    def forward(self, v, training):
        x = v[self.x]
        if training:  # x + std * noise, as the node computes it, in the noise's own buffer
            v[self.y] = draws.randn_like(x).mul_(scalar(self.std, x)).add_(x)
        else:
            v[self.y] = x

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            accumulate(g, self.x, dy)


@register(DropoutNode)
class Dropout(Kernel):
    """Dropout in training calls, the identity otherwise.

    The scaled keep-mask is the node's own (`optimus.draws.dropout_mask`: ``F.dropout`` of
    ones in the default memory order), whatever the layout of ``x`` (e.g. channels-last maps
    from a convolution kernel); the output is ``x * mask``, the backward ``dy * mask``.
    """

    grad_ports = frozenset({"input"})

    def __init__(self, b: Binding):
        super().__init__(b)
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.rate = b.node.spec.rate
        self.mask = b.private() if b.saves else None

    def forward(self, v, training):
        x = v[self.x]
        if not training or self.rate == 0.0:
            v[self.y] = x
            if self.mask is not None:
                v[self.mask] = None
            return
        mask = draws.dropout_mask(x, self.rate)  # the reference's draws, in its order
        v[self.y] = x * mask
        if self.mask is not None:
            v[self.mask] = mask

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            mask = v[self.mask]
            accumulate(g, self.x, dy if mask is None else dy * mask)


def _format(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for maps that are (and are not also contiguous) when `BatchNorm` works
    channels-last, else the default."""
    if BatchNorm.CHANNELS_LAST and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the memory order batch normalisation works in (see `BatchNorm`)."""
    return x.contiguous(memory_format=_format(x))


@register(BatchNormNode)
class BatchNorm(Kernel):
    """Batch normalisation over axis 1: batch statistics and a running-statistics update in
    training calls (``native_batch_norm`` and its backward through `optimus.compat`), the
    running statistics otherwise.

    Memory order (`CHANNELS_LAST`, default True): channels-last maps from a convolution kernel
    stay channels-last, as in eager PyTorch after ``model.to(memory_format=torch.channels_last)``
    and with its numbers (seed-004 with BatchNorm after each conv: losses within 1e-6 of that
    loop over five Adam steps). Measured on a 2-core CPU, steps interleaved: 34 ms per step,
    against 58 ms converting to the default order and back, 50 ms for eager PyTorch in the
    default order and 32 ms for eager channels-last. PyTorch sums the batch statistics of
    channels-last maps in float32 (in float64 for the default order): the same values to
    float32 rounding, but Adam's first steps take the sign of each gradient entry, batch
    normalisation makes some entries nearly zero, and a few weights step the other way, so the
    two memory orders' losses drift apart by a few 1e-3 within five Adam steps (float64 truth:
    1e-6 from the default order, 4e-3 from channels-last, in eager PyTorch as here; with plain
    SGD they agree to 1e-7). ``BatchNorm.CHANNELS_LAST = False`` gives the default order's
    numbers at the conversions' cost.
    """

    CHANNELS_LAST = True

    grad_ports = frozenset({"input", "gamma", "beta"})
    fusable = frozenset({"gamma", "beta"})
    keeps_low = True  # bfloat16 maps in and out, float32 statistics (as under autocast)

    def __init__(self, b: Binding):
        super().__init__(b)
        spec = b.node.spec
        self.momentum, self.eps = spec.momentum, spec.epsilon
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.gamma, self.beta = b.ins["gamma"], b.ins["beta"]
        self.mean, self.var = b.ins["running_mean"], b.ins["running_var"]
        # saved for the backward: the input (default order), and (batch mean, 1 / batch std)
        # or None after an eval forward
        self.xc = b.private() if b.saves else None
        self.stats = b.private() if b.saves else None
        self.mask = ("input" in b.need or "input" in b.fused,
                     "gamma" in b.need or "gamma" in b.fused,
                     "beta" in b.need or "beta" in b.fused)
        self.fg, self.fb = b.fused.get("gamma"), b.fused.get("beta")

    def forward(self, v, training):
        x = _layout(v[self.x])
        if self.xc is not None:
            v[self.xc] = x
        if not training:
            v[self.y] = F.batch_norm(x, v[self.mean], v[self.var], v[self.gamma], v[self.beta],
                                     False, self.momentum, self.eps)
            if self.stats is not None:
                v[self.stats] = None
            return
        y, mean, invstd = compat.batch_norm_forward(x, v[self.gamma], v[self.beta],
                                                    v[self.mean], v[self.var], self.momentum,
                                                    self.eps)
        v[self.y] = y
        if self.stats is not None:
            v[self.stats] = (mean, invstd)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        v[self.y] = g[self.y] = None  # not read here: released before the gradients are made
        x, stats = v[self.xc], v[self.stats]
        dy = dy.contiguous(memory_format=_format(x))
        if stats is None:  # after an eval forward: the running statistics are constants
            dx, dgamma, dbeta = self._eval_grads(v, x, dy)
        else:
            dx, dgamma, dbeta = compat.batch_norm_backward(dy, x, v[self.gamma], *stats,
                                                           self.eps, self.mask)
        if dx is not None and "input" in self.need:
            accumulate(g, self.x, dx)
        for slot, grad, fused, port in ((self.gamma, dgamma, self.fg, "gamma"),
                                        (self.beta, dbeta, self.fb, "beta")):
            if grad is not None and (fused is not None or port in self.need):
                param_grad(v, g, lrs, slot, grad, fused)

    def _eval_grads(self, v, x, dy):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        axes = [0, *range(2, x.dim())]
        invstd = torch.rsqrt(v[self.var] + self.eps)
        dx = dy * (v[self.gamma] * invstd).reshape(shape) if self.mask[0] else None
        xhat = (x - v[self.mean].reshape(shape)) * invstd.reshape(shape)
        dgamma = (dy * xhat).sum(axes) if self.mask[1] else None
        dbeta = dy.sum(axes) if self.mask[2] else None
        return dx, dgamma, dbeta
