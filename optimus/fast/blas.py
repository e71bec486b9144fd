"""Matrix products of the dense kernels, each routed to the CPU library that is faster for its
shape on this machine.

PyTorch sends CPU float32 products to MKL. PyTorch also bundles oneDNN, reached here through the
operator ``torch.compile`` uses for CPU linear layers (``mkldnn._linear_pointwise``, a private
call: `optimus.compat.linear`, which falls back to ``F.linear`` where it is missing). Which
library wins depends on the CPU: for the forward and input-gradient products of seed 002's
hidden layer (256 x 784 -> 100) oneDNN takes 160 / 140 us against MKL's 319 / 266 on a 2-core
AMD EPYC, but 534 / 406 against MKL's 322 / 279 on a 2-core Intel Xeon (AVX-512). So each
product's route is measured on this machine at first use and kept (`optimus.fast.routes`:
per process, and in a per-machine file so later runs take the same routes).

The static rule below is what the measurement must beat by a margin, and what runs where
nothing is measured (``OPTIMUS_ROUTES=static``, products over `routes.MAX_MACS`, non-CPU or
non-float32 tensors go to ``torch.mm``). Tuned on the AMD EPYC: oneDNN for the forward and
input gradient of layers of at least `ONEDNN_MACS` multiply-adds over `ONEDNN_ROWS` rows with
an inner axis of `ONEDNN_INNER`; for the weight gradient ``x.T @ dz`` (which sums over the
batch), oneDNN with many rows and at least `WIDE_OUT` outputs, computed transposed
``(dz.T @ x).T`` below `WIDEST_OUT` outputs and in place above; a narrow layer (few outputs)
over many rows in MKL transposed; everything else MKL. With plain SGD and the 'mkl' weight
route, the update is fused into the product (``W.addmm_``). All routes agree to float
rounding.

`affine`, `weight_grad` and `sgd_weight_step` compute a product on its route; the
``*_call`` functions return the route's implementation instead, for a caller that
keeps it while the shape stays (the dense kernel does, per batch size: deciding the route
again at every step cost a fifth of the Python work of a small training step).
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from .. import compat
from . import routes
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
    return _ONEDNN and t.is_cpu and t.dtype is torch.float32  # no torch.device object made


def _onednn_rule(rows: int, inner: int, cols: int) -> str:
    """The static rule of the forward and input-gradient products (CPU float32 operands)."""
    return ("onednn" if rows >= ONEDNN_ROWS and inner >= ONEDNN_INNER
            and rows * inner * cols >= ONEDNN_MACS else "mkl")


def _weight_rule(rows: int, n_in: int, n_out: int, onednn: bool = True) -> str:
    """The static rule of the weight gradient (``onednn``: the operands are CPU float32)."""
    if (onednn and _ONEDNN and rows >= WIDE_ROWS and n_out >= WIDE_OUT
            and n_in * n_out >= WIDE_SIZE):
        return "onednn" if n_out >= WIDEST_OUT else "onednn_t"
    if rows >= NARROW_ROWS and n_out <= NARROW_OUT:
        return "mkl_t"
    return "mkl"


# Each product's implementations, by route.
_FORWARD = {
    "mkl": lambda x, w, b: torch.addmm(b, x, w),
    "onednn": lambda x, w, b: compat.linear(x, w.t(), b),
}
_INPUT_GRAD = {
    "mkl": lambda dz, w: torch.mm(dz, w.t()),
    "onednn": lambda dz, w: compat.linear(dz, w, None),
}
_WEIGHT_GRAD = {
    "onednn": lambda x, dz: compat.linear(x.t(), dz.t(), None),
    "onednn_t": lambda x, dz: compat.linear(dz.t(), x.t(), None).t(),
    "mkl_t": lambda x, dz: torch.mm(dz.t(), x).t(),
    "mkl": lambda x, dz: torch.mm(x.t(), dz),
}


def _sgd_step_on(route: str) -> Callable[[Tensor, Tensor, Tensor, float, float], None]:
    if route == "mkl":  # the update fused into the product
        return lambda w, x, dz, lr, decay: w.addmm_(x.t(), dz, beta=1.0 - lr * decay,
                                                    alpha=-lr)
    grad = _WEIGHT_GRAD[route]
    return lambda w, x, dz, lr, decay: sgd_update(w, grad(x, dz), lr, decay)


_SGD_STEP = {route: _sgd_step_on(route) for route in _WEIGHT_GRAD}


def forward_call(x: Tensor, w: Tensor) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """``(x, w, b) -> x @ w + b`` on the route for operands shaped as ``x (n, in)`` and
    ``w (in, out)``: a dense kernel keeps it while the batch size stays (see `affine`)."""
    inner, cols = w.shape
    if _cpu_float(x):
        return _FORWARD[_route("affine", x.shape[0], inner, cols, _onednn_rule)]
    return _FORWARD["mkl"]


def input_grad_call(dz: Tensor, w: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``(dz, w) -> dz @ w.T`` for ``dz (n, out)``, ``w (in, out)``: the input gradient of
    `affine`, on its route."""
    n_in, n_out = w.shape
    if _cpu_float(dz):
        return _INPUT_GRAD[_route("times_transposed", dz.shape[0], n_out, n_in, _onednn_rule)]
    return _INPUT_GRAD["mkl"]


def weight_grad_call(x: Tensor, dz: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``(x, dz) -> x.T @ dz`` on its route (see `weight_grad`)."""
    return _WEIGHT_GRAD[weight_route(x, dz)]


def sgd_weight_step_call(x: Tensor, dz: Tensor
                         ) -> Callable[[Tensor, Tensor, Tensor, float, float], None]:
    """``(w, x, dz, lr, decay)``: `sgd_weight_step` on its route."""
    return _SGD_STEP[weight_route(x, dz, sgd=True)]


def affine(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``x @ w + b`` for ``x (n, in)``, ``w (in, out)``, ``b (out,)``."""
    return forward_call(x, w)(x, w, b)


def weight_route(x: Tensor, dz: Tensor, sgd: bool = False) -> str:
    """How `weight_grad` computes ``x.T @ dz``: 'onednn', 'onednn_t', 'mkl_t' or 'mkl'
    (``_t``: transposed); measured on this machine for CPU float32 (`optimus.fast.routes`),
    else the static rule. ``sgd``: for `sgd_weight_step`, where 'mkl' also does the update."""
    rows, n_in, n_out = x.shape[0], x.shape[1], dz.shape[1]
    if not (x.is_cpu and x.dtype is torch.float32):
        return _weight_rule(rows, n_in, n_out, onednn=False)
    return _route("sgd_weight_step" if sgd else "weight_grad", rows, n_in, n_out, _weight_rule)


def weight_grad(x: Tensor, dz: Tensor, route: str | None = None) -> Tensor:
    """``x.T @ dz`` for ``x (n, in)``, ``dz (n, out)``: the weight gradient of `affine`, as
    an ``(in, out)`` tensor that may be a transposed view."""
    return _WEIGHT_GRAD[route or weight_route(x, dz)](x, dz)


def sgd_weight_step(w: Tensor, x: Tensor, dz: Tensor, lr: float, decay: float) -> None:
    """``w <- (1 - lr * decay) * w - lr * x.T @ dz`` in place: a plain-SGD step of an affine
    layer's weights, fused into the product where MKL computes it (the gradient is never
    materialised)."""
    sgd_weight_step_call(x, dz)(w, x, dz, lr, decay)


def sgd_bias_step(b: Tensor, dz: Tensor, ones: Tensor, lr: float, decay: float) -> None:
    """``b <- (1 - lr * decay) * b - lr * dz.sum(0)`` in place for ``dz (n, out)`` and ``ones``
    of length n: the plain-SGD step of an affine layer's bias, the sum over the batch done by
    the update's own matrix-vector product (one call, not a sum and an update: 1 us less on
    the seeds' layers)."""
    b.addmv_(dz.t(), ones, beta=1.0 - lr * decay, alpha=-lr)


def _contiguous_grad(route: str, x: Tensor, dz: Tensor) -> Tensor:
    return _WEIGHT_GRAD[route](x, dz).contiguous()


def _sgd_step(route: str, w: Tensor, x: Tensor, dz: Tensor) -> None:
    _SGD_STEP[route](w, x, dz, 1e-9, 1.0)  # with weight decay: the slower case of each route


def _route(op: str, rows: int, inner: int, cols: int, rule: Callable[[int, int, int], str]
           ) -> str:
    """`routes.choose` for a product of CPU float32 operands, with this module's candidates
    (MKL only where oneDNN is unavailable) and ``rule(rows, inner, cols)`` as the static
    rule; a decision already taken costs one dict lookup (the kernels call this at every
    product, so the rule is only evaluated when no decision exists)."""
    if routes.MODE == "static":
        return rule(rows, inner, cols)
    route = routes.decided.get((op, rows, inner, cols, torch.get_num_threads()))
    if route is not None:
        return route
    static = rule(rows, inner, cols)

    weights = op in ("weight_grad", "sgd_weight_step")

    @functools.cache
    def operands() -> tuple[Tensor, ...]:
        """Random operands of this shape, for a measurement: from a private generator, so
        that measuring leaves the user's random stream (noise, dropout) where it was."""
        gen = torch.Generator().manual_seed(0)
        sizes = ([(rows, inner), (rows, cols), (inner, cols)] if weights  # x, dz, weights
                 else [(rows, inner), (inner, cols)])  # a, w
        return tuple(torch.randn(size, generator=gen) for size in sizes)

    def timed_call(name: str) -> Callable[[], object]:
        if op == "weight_grad":  # handed to a step rule, which wants it contiguous
            x, dz, _ = operands()
            return functools.partial(_contiguous_grad, name, x, dz)
        if op == "sgd_weight_step":  # the step as it runs: fused in 'mkl', else after
            x, dz, w = operands()
            return functools.partial(_sgd_step, name, w, x, dz)
        a, w = operands()
        return (functools.partial(torch.mm, a, w) if name == "mkl"
                else functools.partial(compat.linear, a, w.t(), None))

    if weights:
        names = tuple(_WEIGHT_GRAD) if _ONEDNN else ("mkl", "mkl_t")
    else:
        names = ("mkl", "onednn") if _ONEDNN else ("mkl",)
    candidates = {name: functools.partial(timed_call, name) for name in names}
    return routes.choose(op, (rows, inner, cols), static, candidates)
