"""Convolution and pooling kernels with their backward written out.

The convolution kernel computes what `optimus.Conv3D` / `optimus.Conv2D` compute, as their
`ConvSpec` says (explicit or asymmetric 'same' padding, stride, activation, optional
max-pooling, in the node's order), and its backward calls the ATen kernels autograd would
(``convolution_backward``, the pooling backward, through `optimus.compat`), asking only for the
gradients the step needs (never the input gradient of the first layer), without autograd's
graph bookkeeping.

Activations between these kernels are channels-last (NHWC in memory, same shape): on the
2-core CPU this was measured on, max-pooling a ``(128, 16, 28, 28)`` batch takes 0.44 ms
channels-last against 4.5 ms in the default layout, and the convolutions are as fast or
faster. Parameters keep their layout; each step converts the (small) weights. In inference
calls, a chain of convolutions from an input of few channels runs on oneDNN's blocked maps
(`optimus.fast.blocked`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import compat
from ..nodes.conv import Conv2D as Conv2DNode
from ..nodes.conv import Conv3D as Conv3DNode
from ..nodes.pool import AvgPool as AvgPoolNode
from ..nodes.pool import MaxPool as MaxPoolNode
from . import blocked
from .activations import bind
from .kernel import Binding, Kernel, accumulate, param_grad, register

NHWC = torch.channels_last


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """``t`` channels-last (no copy when it already is).

    A single-channel tensor is contiguous in both layouts and keeps its default strides,
    which makes oneDNN pick the slow default layout for the whole convolution (4.8 ms against
    0.56 ms for a (128, 1, 28, 28) batch); it gets explicit channels-last strides, a view of
    the same memory.
    """
    if not t.is_contiguous(memory_format=NHWC):
        return t.contiguous(memory_format=NHWC)
    if t.stride(1) == 1:
        return t
    n, c, h, w = t.shape
    return t.as_strided(t.shape, (c * h * w, 1, w * c, c))


def max_pool_values(x: torch.Tensor, window: list[int]) -> torch.Tensor:
    """``F.max_pool2d(x, window)`` (stride = window, no padding) without the argmax indices
    the backward needs: the elementwise maximum of strided views of a channels-last ``x``,
    3x faster than ATen's CPU pooling, which computes indices even when not asked (a
    ``(80, 16, 28, 28)`` batch, 2 threads: 0.27 ms against 0.86 ms). Exact, NaN included;
    the result is channels-last."""
    kh, kw = window
    n, c, h, w = x.shape
    v = x.permute(0, 2, 3, 1)[:, :h - h % kh, :w - w % kw]  # NHWC view, whole windows only
    rows = v[:, 0::kh]
    for i in range(1, kh):
        rows = torch.maximum(rows, v[:, i::kh])
    out = rows[:, :, 0::kw]
    for j in range(1, kw):
        out = torch.maximum(out, rows[:, :, j::kw])
    return out.permute(0, 3, 1, 2)


@register(Conv3DNode, Conv2DNode)
class Conv(Kernel):
    """Kernel of the convolution nodes: convolution, activation, optional max-pooling."""

    grad_ports = frozenset({"input", "weights", "bias"})
    fusable = frozenset({"weights", "bias"})
    autocasts = True

    def __init__(self, b: Binding):
        super().__init__(b)
        spec = b.node.spec
        self.dtype = b.options.get("dtype")  # computes in this precision (`Kernel.autocasts`)
        # relu, linear and max-pooling give the same values in any precision: with a dtype,
        # they run in it, on the convolution's result; other activations run in float32
        self.low = self.dtype is not None and spec.activation.name in ("relu", "linear")
        self.hands_low = b.options.get("hands_low", False)  # output to a casting reader
        self.act = bind(spec.activation)
        self.x, self.w, self.b = b.ins["input"], b.ins["weights"], b.ins["bias"]
        self.y = b.outs["output"]
        self.pre_pad = spec.pre_pad  # (left, right, top, bottom)
        self.stride, self.padding = list(spec.stride), list(spec.padding)
        pool = b.options.get("pool", spec.pool)  # a fusion may bring a MaxPool's window
        self.pool = list(pool) if tuple(pool) != (1, 1) else None
        # The node pools before a monotone activation (same result, smaller tensor).
        self.pool_first = spec.pool_first
        saves = b.saves
        # Private slots for the backward: padded input, conv output (the pooling's input),
        # pooling indices, pre-activation (when the activation's backward reads it).
        self.xp = b.private() if saves else None  # the input as convolved (padded, NHWC)
        # the weights as convolved (NHWC) when cast to ``dtype``, as autocast keeps its casts;
        # in float32 the backward makes its NHWC copy again, so that no copy of the weights
        # is held from forward to backward (eager PyTorch holds none: seed-004 with BatchNorm
        # peaked 18 KB above it, conv1's weights)
        self.wc = b.private() if saves and self.dtype is not None else None
        self.z = b.private() if saves and self.pool else None
        self.idx = b.private() if saves and self.pool else None
        self.pre = b.private() if saves and self.act.keeps_input else None
        # what the backward no longer reads once it has the convolution output's gradient
        self.spent = tuple(s for s in (self.z, self.idx, self.pre) if s is not None)
        self.mask = ["input" in b.need, "weights" in b.need, "bias" in b.need]
        self.fw, self.fb = b.fused.get("weights"), b.fused.get("bias")
        # inference on oneDNN's blocked maps (`blocked.plan`): (blocked input, blocked output),
        # and, where a chain starts, the bound that admits an input
        self.blocked, self.bound = b.options.get("blocked"), b.options.get("bound")
        self.relu = spec.activation.name == "relu"

    @classmethod
    def blockable(cls, op) -> bool:
        """The op can run on blocked maps (`blocked.plan`): relu or linear, no asymmetric
        padding, no option but a fused pooling."""
        spec = op.node.spec
        return (spec.activation.name in blocked.ACTIVATIONS and spec.pre_pad is None
                and set(op.options) <= {"pool"})

    def _admits(self, x: torch.Tensor) -> bool:
        """A chain's first convolution runs blocked on ``x`` (else the whole chain is dense)."""
        return (x.shape[0] > 0 and x.dtype is torch.float32 and x.device.type == "cpu"
                and self.bound.admits(x))

    def _pool(self, v, z):
        if self.idx is None:
            return max_pool_values(z, self.pool)
        v[self.z] = z
        p, v[self.idx] = F.max_pool2d(z, self.pool, self.pool, return_indices=True)
        return p

    def forward(self, v, training):
        x = v[self.x]
        if x.is_mkldnn or self.bound is not None and self._admits(x):
            v[self.y] = blocked.conv_forward(x, v[self.w], v[self.b], self.stride,
                                             self.padding, self.pool, self.relu,
                                             self.blocked[1])
            return
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        w, bias, dtype = v[self.w], v[self.b], self.dtype
        own = w.dtype  # the parameters' precision, what the kernel hands out
        if dtype is not None:
            x, w, bias = x.to(dtype), w.to(dtype), bias.to(dtype)
        x, w = _nhwc(x), _nhwc(w)
        if self.xp is not None:
            v[self.xp] = x
        if self.wc is not None:
            v[self.wc] = w
        z = F.conv2d(x, w, bias, self.stride, self.padding)
        if dtype is not None and not self.low:
            z = z.to(own)
        if self.pool is not None and self.pool_first:
            z = self._pool(v, z)
        if self.pre is not None:
            v[self.pre] = z
        y = self.act.apply(z)
        if self.pool is not None and not self.pool_first:
            y = self._pool(v, y)
        v[self.y] = y if dtype is None or self.hands_low else y.to(own)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        # What only the activation and pooling gradients read is released as soon as they
        # have run, before the convolution's own backward (as autograd frees a node's saved
        # tensors): a step's peak of memory falls here (seed-004: 2.3 MB lower).
        g[self.y] = None
        dtype = self.dtype
        dy = _nhwc(dy.to(dtype) if self.low else dy)
        if self.pool is not None and not self.pool_first:
            dy = self._pool_grad(v, dy)
        # The activation's output: the kernel output, or the pooling input when pooled after.
        y = v[self.y] if self.pool is None or self.pool_first else v[self.z]
        if self.low and y.dtype != dtype:  # the output handed out in the parameters' dtype
            y = y.to(dtype)
        dz = self.act.grad(dy, y, None if self.pre is None else v[self.pre])
        del dy, y
        v[self.y] = None
        if self.pool is not None and self.pool_first:
            dz = self._pool_grad(v, dz)
        for slot in self.spent:
            v[slot] = None
        if dtype is not None:
            dz = dz.to(dtype)
        w = v[self.wc] if self.wc is not None else _nhwc(v[self.w])
        dx, dw, db = compat.conv2d_backward(dz, v[self.xp], w, self.stride,
                                            self.padding, self.mask)
        if dtype is not None:  # gradients in the precision of the values and parameters
            own = v[self.w].dtype
            dw, db = (None if t is None else t.to(own) for t in (dw, db))
            dx = None if dx is None else dx.to(v[self.x].dtype)
        if dx is not None:
            if self.pre_pad is not None:
                left, right, top, bottom = self.pre_pad
                dx = dx[:, :, top:dx.shape[2] - bottom, left:dx.shape[3] - right]
            accumulate(g, self.x, dx)
        for slot, grad, fused in ((self.w, dw, self.fw), (self.b, db, self.fb)):
            if grad is not None:  # contiguous: the parameter's own layout
                param_grad(v, g, lrs, slot, grad if fused is not None else grad.contiguous(),
                           fused)

    def _pool_grad(self, v, dy):
        return compat.max_pool2d_backward(dy, v[self.z], self.pool, self.pool, (0, 0),
                                          v[self.idx])


class _Pool(Kernel):
    grad_ports = frozenset({"input"})

    def __init__(self, b: Binding):
        super().__init__(b)
        spec = b.node.spec
        self.x, self.y = b.ins["input"], b.outs["output"]
        self.pool, self.stride = list(spec.window), list(spec.stride)
        self.padding = list(spec.padding)


@register(MaxPoolNode)
class MaxPool(_Pool):
    """Max-pooling; keeps the argmax indices for the backward."""

    keeps_low = True  # the maximum of bfloat16 values is one of them

    def __init__(self, b: Binding):
        super().__init__(b)
        self.idx = b.private() if b.saves else None
        self.xc = b.private() if b.saves else None

    def forward(self, v, training):
        x = _nhwc(v[self.x])
        if self.idx is None and self.pool == self.stride and not any(self.padding):
            v[self.y] = max_pool_values(x, self.pool)
        elif self.idx is None:
            v[self.y] = F.max_pool2d(x, self.pool, self.stride, self.padding)
        else:
            v[self.y], v[self.idx] = F.max_pool2d(x, self.pool, self.stride, self.padding,
                                                  return_indices=True)
            v[self.xc] = x

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            v[self.y] = g[self.y] = None  # not read here: released before the gradient is made
            accumulate(g, self.x, compat.max_pool2d_backward(
                _nhwc(dy), v[self.xc], self.pool, self.stride, self.padding, v[self.idx]))


@register(AvgPoolNode)
class AvgPool(_Pool):
    """Average-pooling (padded zeros count, as in the node)."""

    def forward(self, v, training):
        v[self.y] = F.avg_pool2d(_nhwc(v[self.x]), self.pool, self.stride, self.padding)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is not None:
            accumulate(g, self.x, compat.avg_pool2d_backward(
                _nhwc(dy), _nhwc(v[self.x]), self.pool, self.stride, self.padding))
