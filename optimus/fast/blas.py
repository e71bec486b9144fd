"""Matrix products of the dense kernels, each routed to the CPU library that is faster for its
shape.

PyTorch sends CPU float32 products to MKL. PyTorch also bundles oneDNN, reached here through the
operator ``torch.compile`` uses for CPU linear layers (``mkldnn._linear_pointwise``, a private
call: `optimus.compat.linear`, which falls back to ``F.linear`` where it is missing). On the
2-core AMD EPYC this was tuned on (torch 2.13.0, MKL 2024.2, oneDNN 3.12), oneDNN is about twice
as fast as MKL for the forward and input-gradient products of every layer of at least
`ONEDNN_MACS` multiply-adds over `ONEDNN_ROWS` rows, weights laid out anew each call included
(us, MKL against oneDNN):

| rows x in -> out | forward | input gradient |
|---|---|---|
| 256 x 784 -> 100 (seed 002) | 319 / 160 | 266 / 140 |
| 25 x 1500 -> 512 (seed 000) | 413 / 190 | 368 / 155 |
| 128 x 1024 -> 1024 | 1729 / 803 | 1599 / 814 |
| 128 x 288 -> 10 (seed 004) | 28 / 23 | 11 / 18 |

It costs ~15 us more per call, so MKL keeps products that are small, that have few rows (5 x
13989 -> 20, seed 001: 100 us against 65 us) or a short inner axis (the input gradient of a
10-class classifier, last row above).

The weight gradient ``x.T @ dz`` sums over the batch; which library wins depends on all three
sizes. With many rows and at least `WIDE_OUT` outputs, oneDNN wins; it computes the gradient
transposed, ``(dz.T @ x).T``, below `WIDEST_OUT` outputs (256 x 784 -> 100: 225 us against 269
us for MKL's fused ``W.addmm_``; 1000 x 784 -> 100: 506 against 1001) and in place above
(128 x 1024 -> 1024: 980 against 1580). A narrow layer (few outputs) over many rows is fastest
in MKL transposed (128 x 288 -> 10: 29 against 47). Everything else, and every non-CPU or
non-float32 tensor, stays with ``torch.mm``. All routes agree to float rounding.
"""
from __future__ import annotations

import torch

from .. import compat
from .kernel import sgd_update

Tensor = torch.Tensor
ONEDNN_MACS = 300_000  # forward and input gradient: oneDNN from this many multiply-adds ...
ONEDNN_ROWS = 16  # ... over at least this many rows ...
ONEDNN_INNER = 32  # ... and an inner (summed) axis at least this long
WIDE_ROWS, WIDE_OUT, WIDE_SIZE = 128, 100, 50_000  # weight gradient through oneDNN ...
WIDEST_OUT = 256  # ... computed in place (not transposed) from this many outputs
NARROW_ROWS, NARROW_OUT = 64, 16  # weight gradient transposed, in MKL

_ONEDNN = compat.onednn_linear()  # whether compat.linear runs on oneDNN (checked once)


def _cpu_float(t: Tensor) -> bool:
    return _ONEDNN and t.device.type == "cpu" and t.dtype == torch.float32


def _onednn(a: Tensor, inner: int, cols: int) -> bool:
    """Whether ``a (rows, inner) @ (inner, cols)`` goes to oneDNN."""
    rows = a.shape[0]
    return (_cpu_float(a) and rows >= ONEDNN_ROWS and inner >= ONEDNN_INNER
            and rows * inner * cols >= ONEDNN_MACS)


def affine(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``x @ w + b`` for ``x (n, in)``, ``w (in, out)``, ``b (out,)``."""
    if _onednn(x, *w.shape):
        return compat.linear(x, w.t(), b)
    return torch.addmm(b, x, w)


def times_transposed(dz: Tensor, w: Tensor) -> Tensor:
    """``dz @ w.T`` for ``dz (n, out)``, ``w (in, out)``: the input gradient of `affine`."""
    n_in, n_out = w.shape
    if _onednn(dz, n_out, n_in):
        return compat.linear(dz, w, None)
    return torch.mm(dz, w.t())


def weight_route(x: Tensor, dz: Tensor) -> str:
    """How `weight_grad` computes ``x.T @ dz``: 'onednn', 'onednn_t', 'mkl_t' or 'mkl'
    (``_t``: transposed)."""
    rows, n_in, n_out = x.shape[0], x.shape[1], dz.shape[1]
    if (_cpu_float(x) and rows >= WIDE_ROWS and n_out >= WIDE_OUT
            and n_in * n_out >= WIDE_SIZE):
        return "onednn" if n_out >= WIDEST_OUT else "onednn_t"
    if rows >= NARROW_ROWS and n_out <= NARROW_OUT:
        return "mkl_t"
    return "mkl"


def weight_grad(x: Tensor, dz: Tensor, route: str | None = None) -> Tensor:
    """``x.T @ dz`` for ``x (n, in)``, ``dz (n, out)``: the weight gradient of `affine`, as
    an ``(in, out)`` tensor that may be a transposed view."""
    route = route or weight_route(x, dz)
    if route == "onednn":
        return compat.linear(x.t(), dz.t(), None)
    if route == "onednn_t":
        return compat.linear(dz.t(), x.t(), None).t()
    if route == "mkl_t":
        return torch.mm(dz.t(), x).t()
    return torch.mm(x.t(), dz)


def sgd_weight_step(w: Tensor, x: Tensor, dz: Tensor, lr: float, decay: float) -> None:
    """``w <- (1 - lr * decay) * w - lr * x.T @ dz`` in place: a plain-SGD step of an affine
    layer's weights, fused into the product where MKL computes it (the gradient is never
    materialised)."""
    route = weight_route(x, dz)
    if route == "mkl":
        w.addmm_(x.t(), dz, beta=1.0 - lr * decay, alpha=-lr)
        return
    sgd_update(w, weight_grad(x, dz, route), lr, decay)
