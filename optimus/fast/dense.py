"""The fully-connected kernel: ``act(flatten(x) @ W + b)`` with its backward written out.

Every matrix product goes through `optimus.fast.blas`, which picks MKL or oneDNN (and the
memory order of the weight gradient) by shape; the kernel keeps the routed products of each
batch size it meets, so that a step calls them without deciding again. With plain SGD the
weight update is fused into the gradient's product where MKL computes it
(``W.addmm_(x.T, dz, alpha=-lr)``), so the weight gradient is never materialised; the bias
update is one matrix-vector product (``b.addmv_(dz.T, ones, alpha=-lr)``) instead of a sum and
an update. A batch of a wide input that uses few of its columns (bag-of-words counts) is
multiplied on those columns only, and a plain-SGD step moves only those rows of W
(`optimus.fast.sparse`).
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..nodes.affine import Affine as AffineNode
from ..nodes.specs import ActivationSpec
from . import blas, sparse
from .activations import bind
from .kernel import Binding, Kernel, accumulate, param_grad, register, scalar


MAX_BATCH_SIZES = 16  # routed products kept per kernel; more batch sizes start again


@register(AffineNode)
class Affine(Kernel):
    """Kernel of `optimus.Affine` (its `DenseSpec`); a fusion may override its activation
    (``options['act'] = 'linear'``, on a 2-D output)."""

    grad_ports = frozenset({"input", "weights", "bias"})
    fusable = frozenset({"weights", "bias"})
    autocasts = True

    def __init__(self, b: Binding):
        super().__init__(b)
        spec = b.node.spec
        self.dtype = b.options.get("dtype")  # computes in this precision (`Kernel.autocasts`)
        act = b.options.get("act")
        self.act = bind(ActivationSpec(act) if act else spec.activation)
        # relu and linear give the same values in any precision: with a reader that casts
        # anyway, they run in ``dtype`` and hand it their result in it
        self.hands_low = b.options.get("hands_low", False) and (
            act or spec.activation.name) in ("relu", "linear")
        self.x, self.w, self.b = b.ins["input"], b.ins["weights"], b.ins["bias"]
        self.y = b.outs["output"]
        self.flat = len(b.in_shapes["input"]) > 2
        # The node reshapes its 2-D result to output_shape[1:] when that has several axes.
        out_dims = spec.out_dims
        self.out_dims = out_dims if len(out_dims) > 1 and not act else None
        self.z = b.private() if b.saves and self.act.keeps_input else None
        # the input as multiplied (flattened, or cast to ``dtype``) and the weights cast
        self.xf = b.private() if b.saves and (self.flat or self.dtype) else None
        self.wc = b.private() if b.saves and self.dtype else None
        self.dx = "input" in b.need
        self.dw, self.db = "weights" in b.need, "bias" in b.need
        self.fw, self.fb = b.fused.get("weights"), b.fused.get("bias")
        # a wide input that needs no gradient may be sparse (`optimus.fast.sparse`): the
        # columns a batch uses, and the input gathered on them (cast to ``dtype``), are kept
        # for the backward
        self.sparse = (not self.flat and not self.dx
                       and (b.in_shapes["input"][-1] or 0) >= sparse.MIN_INPUTS)
        self.cols = b.private() if b.saves and self.sparse else None
        self.xs = b.private() if b.saves and self.sparse else None
        # routed products by (rows, threads): `_forward_call`, `_backward_calls`
        self.forwards: dict[tuple[int, int], Callable] = {}
        self.backwards: dict[tuple[int, int], tuple] = {}

    def forward(self, v, training):
        x, w, b, dtype = v[self.x], v[self.w], v[self.b], self.dtype
        if self.flat:
            x = x.flatten(1)  # a copy when x is channels-last: kept for the backward
        cols = sparse.used_columns(x) if self.sparse and x.is_cpu else None
        if cols is not None:  # (else the slot self.cols stays None: a call's slots start empty)
            xs, ws = x.index_select(1, cols), w.index_select(0, cols)
            if dtype is not None:  # only the used rows of W are cast
                xs, ws, b = xs.to(dtype), ws.to(dtype), b.to(dtype)
            z = torch.addmm(b, xs, ws)
            if self.cols is not None:
                v[self.cols], v[self.xs] = cols, xs
        elif dtype is not None:
            x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
            if self.wc is not None:
                v[self.wc] = w
            if self.xf is not None:
                v[self.xf] = x
            z = blas.affine(x, w, b)
        else:
            if self.xf is not None:
                v[self.xf] = x
            call = self.forwards.get((x.shape[0], torch.get_num_threads()))
            z = (call or self._forward_call(x, w))(x, w, b)
        if dtype is not None and not self.hands_low:
            z = z.to(v[self.w].dtype)  # the activation (and what reads y) in the params' dtype
        if self.z is not None:
            v[self.z] = z
        y = self.act.apply(z)
        v[self.y] = y if self.out_dims is None else y.view(y.shape[0], *self.out_dims)

    def backward(self, v, g, lrs):
        dy = g[self.y]
        if dy is None:
            return
        y = v[self.y]
        if self.out_dims is not None:
            dy, y = dy.reshape(dy.shape[0], -1), y.view(y.shape[0], -1)
        if self.dtype is not None:
            return self._backward_cast(v, g, lrs, dy, y)
        dz = self.act.grad(dy, y, None if self.z is None else v[self.z])
        w = v[self.w]
        x = v[self.xf] if self.flat else v[self.x]
        calls = self.backwards.get((dz.shape[0], torch.get_num_threads()))
        input_grad, weight_call, ones = calls or self._backward_calls(x, dz, w)
        if input_grad is not None:  # before any in-place update of W
            dx = input_grad(dz, w)
            accumulate(g, self.x, dx.view(v[self.x].shape) if self.flat else dx)
        cols = None if self.cols is None else v[self.cols]
        if cols is not None:
            self._sparse_weight_grad(v, g, lrs, w, cols, dz)
        elif self.fw is not None:
            group, decay = self.fw
            weight_call(w, x, dz, lrs[group], decay)
        elif weight_call is not None:
            accumulate(g, self.w, weight_call(x, dz))
        if self.fb is not None:
            group, decay = self.fb
            blas.sgd_bias_step(v[self.b], dz, ones, lrs[group], decay)
        elif self.db:
            accumulate(g, self.b, dz.sum(0))

    def _sparse_weight_grad(self, v, g, lrs, w, cols, dz):
        """The weight step or gradient of a sparse batch: ``x.T @ dz`` is zero outside the
        rows ``cols``, so a plain-SGD step moves only those (after the decay, if any). ``dz``
        in the product's dtype; the rows reach ``w`` in its own."""
        if self.fw is None and not self.dw:  # frozen weights (a learning rate of 0)
            return
        rows = torch.mm(v[self.xs].t(), dz)
        if rows.dtype != w.dtype:  # under autocast
            rows = rows.to(w.dtype)
        if self.fw is not None:
            group, decay = self.fw
            lr = lrs[group]
            if decay:
                w.mul_(scalar(1.0 - lr * decay, w))
            # index_put_ (the columns are distinct): 9 us against index_add_'s 26 on seed 001
            w.index_put_((cols,), rows.mul_(scalar(-lr, rows)), accumulate=True)
        elif self.dw:
            accumulate(g, self.w, w.new_zeros(w.shape).index_copy_(0, cols, rows))

    def _forward_call(self, x, w):
        """The forward product on its route at ``x``'s batch size (`optimus.fast.blas`),
        decided once per batch size and thread count."""
        if len(self.forwards) >= MAX_BATCH_SIZES:
            self.forwards.clear()
        call = self.forwards[(x.shape[0], torch.get_num_threads())] = blas.forward_call(x, w)
        return call

    def _backward_calls(self, x, dz, w):
        """``(input gradient, weight step or gradient, ones)`` at ``dz``'s batch size: the
        routed products the plan needs (None where it needs none), and for a fused bias step
        a vector of ones as long as the batch."""
        if len(self.backwards) >= MAX_BATCH_SIZES:
            self.backwards.clear()
        calls = (blas.input_grad_call(dz, w) if self.dx else None,
                 blas.sgd_weight_step_call(x, dz) if self.fw is not None
                 else blas.weight_grad_call(x, dz) if self.dw else None,
                 dz.new_ones(dz.shape[0]) if self.fb is not None else None)
        self.backwards[(dz.shape[0], torch.get_num_threads())] = calls
        return calls

    def _backward_cast(self, v, g, lrs, dy, y):
        """`backward` with the products in ``self.dtype`` (`Kernel.autocasts`); the
        gradients handed on, and the updates, in the parameters' precision."""
        dz = self.act.grad(dy, y, None if self.z is None else v[self.z])  # in y's dtype
        low = dz.to(self.dtype)
        if self.dx:
            x = v[self.x]
            dx = torch.mm(low, v[self.wc].t()).to(x.dtype)
            accumulate(g, self.x, dx.view(x.shape))
        cols = None if self.cols is None else v[self.cols]
        if cols is not None:
            self._sparse_weight_grad(v, g, lrs, v[self.w], cols, low)
        elif self.fw is not None or self.dw:
            param_grad(v, g, lrs, self.w, torch.mm(v[self.xf].t(), low).to(v[self.w].dtype),
                       self.fw)
        if self.fb is not None or self.db:
            param_grad(v, g, lrs, self.b, dz.sum(0, dtype=v[self.b].dtype), self.fb)
