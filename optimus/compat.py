"""Every private PyTorch call optimus makes, each with a public-API fallback.

The fast kernels (`optimus.fast`) call ATen's backward formulas directly (the ones autograd
itself calls) and a few other non-public entry points, because they are faster than going
through autograd and give the very same numbers as the reference path. Those calls are not
covered by PyTorch's compatibility promise, so they all live here, behind small typed
functions with their own stable signatures:

===========================  ===============================================================
function                     private call (public fallback)
===========================  ===============================================================
`set_grad_enabled`           ``torch._C._set_grad_enabled`` (``torch.set_grad_enabled``)
`linear`                     ``torch.ops.mkldnn._linear_pointwise`` (``F.linear``)
`blocked_conv`               ``torch.ops.mkldnn._convolution_pointwise``, relu fused
                             (``torch.mkldnn_convolution``, then ``relu_``)
`threshold_backward`         ``aten.threshold_backward`` (``torch.where``)
`sigmoid_backward`           ``aten.sigmoid_backward`` (``dy * (1 - y) * y``)
`tanh_backward`              ``aten.tanh_backward`` (``dy * (1 - y * y)``)
`softplus_backward`          ``aten.softplus_backward`` (autograd of ``F.softplus``)
`leaky_relu_backward`        ``aten.leaky_relu_backward`` (``torch.where``)
`elu_backward`               ``aten.elu_backward`` (``torch.where``)
`gelu_backward`              ``aten.gelu_backward`` (autograd of ``F.gelu``)
`softmax_backward`           ``torch._softmax_backward_data`` (closed form)
`log_softmax_backward`       ``torch._log_softmax_backward_data`` (closed form)
`conv2d_backward`            ``aten.convolution_backward`` (``torch.nn.grad.conv2d_*``)
`max_pool2d_backward`        ``aten.max_pool2d_with_indices_backward`` (``scatter_add``)
`avg_pool2d_backward`        ``aten.avg_pool2d_backward`` (autograd of ``F.avg_pool2d``)
`nll_loss_forward`           ``aten.nll_loss_forward`` (``F.nll_loss``)
`nll_loss_backward`          ``aten.nll_loss_backward`` (``scatter``)
`batch_norm_forward`         ``aten.native_batch_norm`` (``F.batch_norm`` and statistics)
`batch_norm_backward`        ``aten.native_batch_norm_backward`` (autograd of ``F.batch_norm``)
===========================  ===============================================================

Each private call is checked once, on its first use, against its fallback on a tiny input:
when it is missing (an older or newer PyTorch, a build without oneDNN), raises (a changed
signature) or gives other numbers, the fallback is used from then on, and the choice is logged
at DEBUG level. `use_public` forces every fallback (tests do, to check both give the same
numbers); `chosen` reports which way each function went.

The private calls are those of PyTorch 2.13; the signatures used have not changed since 2.1.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
logger = logging.getLogger(__name__)
_NONE: list = []  # no scalars for mkldnn._linear_pointwise


class _Route:
    """A private implementation, its public fallback, and a probe deciding between them."""

    def __init__(self, name: str, private: Callable[[], Callable], public: Callable,
                 probe: Callable[[], tuple]):
        self.name, self._private, self.public, self._probe = name, private, public, probe
        self.impl: Callable | None = None
        self.forced = False

    def choose(self) -> Callable:
        if self.forced:
            self.impl = self.public
            return self.impl
        try:
            private = self._private()
            args = self._probe()
            if not _same(private(*args), self.public(*args)):
                raise ValueError("its result differs from the public fallback's")
            self.impl = private
        except Exception as err:  # missing op, changed signature, other numbers
            logger.debug("optimus.compat: %s uses its public fallback (%s: %s)", self.name,
                         type(err).__name__, err)
            self.impl = self.public
        return self.impl

    def __call__(self, *args: Any) -> Any:
        impl = self.impl or self.choose()
        return impl(*args)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)):
        return (isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Tensor):
        if a.is_mkldnn and isinstance(b, Tensor) and b.is_mkldnn:  # oneDNN's blocked maps
            a, b = a.to_dense(), b.to_dense()
        return (isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6)))
    return a == b


_ROUTES: dict[str, _Route] = {}


def _route(name: str, private: Callable[[], Callable], probe: Callable[[], tuple]
           ) -> Callable[[Callable], _Route]:
    def make(public: Callable) -> _Route:
        route = _Route(name, private, public, probe)
        route.__doc__ = public.__doc__
        _ROUTES[name] = route
        return route
    return make


def use_public(flag: bool = True) -> None:
    """Use every public fallback (``True``) or go back to choosing on first use (``False``).
    For tests and for checking a suspected PyTorch incompatibility."""
    for route in _ROUTES.values():
        route.forced, route.impl = flag, None


def chosen() -> dict[str, str]:
    """``{function: 'private' | 'public'}`` for every function (choosing where not yet)."""
    return {name: "public" if (r.impl or r.choose()) is r.public else "private"
            for name, r in _ROUTES.items()}


def _direct(op: Any) -> Callable:
    """An operator overload's C++ entry point (``_op``): the same call through the same
    dispatcher, without ``OpOverload.__call__``'s Python frame (0.5 us of a 2 us call)."""
    return getattr(op, "_op", op)


def _aten(name: str) -> Callable[[], Callable]:
    return lambda: _direct(getattr(torch.ops.aten, name).default)


def _grad_of(fn: Callable[[Tensor], Tensor], x: Tensor, dy: Tensor) -> Tensor:
    """``d(sum(fn(x) * dy)) / dx`` by autograd, whatever the caller's grad mode."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_()
        return torch.autograd.grad(fn(leaf), leaf, dy)[0]


def _r(*shape: int, dtype=torch.float64) -> Tensor:
    gen = torch.Generator().manual_seed(sum(shape) + len(shape))
    return torch.randn(*shape, generator=gen, dtype=dtype)


# -- grad mode ------------------------------------------------------------------------------
def _grad_switch() -> Callable:
    return torch._C._set_grad_enabled


@_route("set_grad_enabled", _grad_switch, lambda: (torch.is_grad_enabled(),))
def set_grad_enabled(flag: bool) -> None:
    """Turn autograd recording on or off for this thread (what ``torch.no_grad`` does
    inside), without a context manager's overhead."""
    torch.set_grad_enabled(flag)


# -- matrix product -------------------------------------------------------------------------
def _onednn_linear() -> Callable:
    if not torch.backends.mkldnn.is_available():
        raise RuntimeError("this PyTorch build has no oneDNN")
    op = _direct(torch.ops.mkldnn._linear_pointwise.default)
    return lambda x, w, b: op(x, w, b, "none", _NONE, "")


@_route("linear", _onednn_linear,
        lambda: (_r(4, 40, dtype=torch.float32), _r(3, 40, dtype=torch.float32),
                 _r(3, dtype=torch.float32)))
def linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """``x @ w.T + b`` for ``x (n, in)``, ``w (out, in)``: through oneDNN where available."""
    return F.linear(x, w, b)


def _onednn_conv() -> Callable:
    if not torch.backends.mkldnn.is_available():
        raise RuntimeError("this PyTorch build has no oneDNN")
    op = _direct(torch.ops.mkldnn._convolution_pointwise.default)
    return lambda x, w, b, padding, stride, relu: op(x, w, b, padding, stride, [1, 1], 1,
                                                      "relu" if relu else "none", _NONE, "")


def _blocked_probe() -> tuple:
    x = _r(2, 3, 6, 5, dtype=torch.float32).to_mkldnn()
    return x, _r(4, 3, 3, 2, dtype=torch.float32), _r(4, dtype=torch.float32), [1, 0], [2, 1], True


@_route("blocked_conv", _onednn_conv, _blocked_probe)
def blocked_conv(x: Tensor, w: Tensor, b: Tensor, padding: Sequence[int], stride: Sequence[int],
                 relu: bool) -> Tensor:
    """``relu(conv2d(x, w, b))`` (``relu``) or ``conv2d(x, w, b)`` of oneDNN blocked maps
    ``x`` (a ``to_mkldnn()`` tensor), as blocked maps; the private call applies the relu
    inside the convolution, not in a pass of its own."""
    z = torch.mkldnn_convolution(x, w, b, padding, stride, [1, 1], 1)
    return torch.relu_(z) if relu else z


def onednn_linear() -> bool:
    """Whether `linear` runs on oneDNN (the private call), not ``F.linear``."""
    return chosen_impl("linear") is not _ROUTES["linear"].public


def chosen_impl(name: str) -> Callable:
    route = _ROUTES[name]
    return route.impl or route.choose()


# -- activations ----------------------------------------------------------------------------
def _dy_y(*shape: int) -> tuple[Tensor, Tensor]:
    return _r(*shape), torch.sigmoid(_r(*shape, 1)).reshape(shape)


@_route("threshold_backward", _aten("threshold_backward"),
        lambda: (_r(3, 4), _r(4, 3).reshape(3, 4), 0.0))
def threshold_backward(dy: Tensor, y: Tensor, threshold: float) -> Tensor:
    """The gradient of ``relu``-like thresholding: ``dy`` where ``y > threshold``, else 0."""
    return torch.where(y > threshold, dy, torch.zeros((), dtype=dy.dtype, device=dy.device))


@_route("sigmoid_backward", _aten("sigmoid_backward"), lambda: _dy_y(3, 4))
def sigmoid_backward(dy: Tensor, y: Tensor) -> Tensor:
    """The gradient of ``y = sigmoid(z)`` from its output: ``dy * (1 - y) * y``."""
    return dy * (1 - y) * y


@_route("tanh_backward", _aten("tanh_backward"), lambda: _dy_y(3, 4))
def tanh_backward(dy: Tensor, y: Tensor) -> Tensor:
    """The gradient of ``y = tanh(z)`` from its output: ``dy * (1 - y ** 2)``."""
    return dy * (1 - y * y)


def _softplus_private() -> Callable:
    op = _direct(torch.ops.aten.softplus_backward.default)
    return lambda dy, x, beta, threshold: op(dy, x, beta, threshold)


@_route("softplus_backward", _softplus_private, lambda: (_r(3, 4), _r(4, 3).reshape(3, 4), 2.0,
                                                         20.0))
def softplus_backward(dy: Tensor, x: Tensor, beta: float, threshold: float) -> Tensor:
    """The gradient of ``F.softplus(x, beta, threshold)`` (from its input)."""
    return _grad_of(lambda t: F.softplus(t, beta, threshold), x, dy)


def _leaky_private() -> Callable:
    op = _direct(torch.ops.aten.leaky_relu_backward.default)
    return lambda dy, y, slope: op(dy, y, slope, True)


@_route("leaky_relu_backward", _leaky_private, lambda: (_r(3, 4), _r(4, 3).reshape(3, 4), 0.01))
def leaky_relu_backward(dy: Tensor, y: Tensor, slope: float) -> Tensor:
    """The gradient of ``y = leaky_relu(z, slope)`` from its output."""
    return torch.where(y > 0, dy, dy * slope)


def _elu_private() -> Callable:
    op = _direct(torch.ops.aten.elu_backward.default)
    return lambda dy, y, alpha: op(dy, alpha, 1, 1, True, y)


@_route("elu_backward", _elu_private,
        lambda: (_r(3, 4), F.elu(_r(4, 3).reshape(3, 4)), 1.0))
def elu_backward(dy: Tensor, y: Tensor, alpha: float) -> Tensor:
    """The gradient of ``y = elu(z, alpha)`` from its output: ``dy`` where ``y > 0``, else
    ``dy * (y + alpha)``."""
    return torch.where(y > 0, dy, dy * (y + alpha))


def _gelu_private() -> Callable:
    op = _direct(torch.ops.aten.gelu_backward.default)
    return lambda dy, x: op(dy, x)


@_route("gelu_backward", _gelu_private, lambda: (_r(3, 4), _r(4, 3).reshape(3, 4)))
def gelu_backward(dy: Tensor, x: Tensor) -> Tensor:
    """The gradient of the exact ``F.gelu`` (from its input)."""
    return _grad_of(F.gelu, x, dy)


def _softmax_private() -> Callable:
    op = torch._softmax_backward_data
    return lambda dy, y, dim: op(dy, y, dim, y.dtype)


def _log_softmax_private() -> Callable:
    op = torch._log_softmax_backward_data
    return lambda dy, y, dim: op(dy, y, dim, y.dtype)


@_route("softmax_backward", _softmax_private, lambda: (_r(3, 4), torch.softmax(_r(3, 5)[:, 1:],
                                                                                1), 1))
def softmax_backward(dy: Tensor, y: Tensor, dim: int) -> Tensor:
    """The gradient of ``y = softmax(z, dim)`` from its output."""
    return y * (dy - (dy * y).sum(dim, keepdim=True))


@_route("log_softmax_backward", _log_softmax_private,
        lambda: (_r(3, 4), torch.log_softmax(_r(3, 5)[:, 1:], 1), 1))
def log_softmax_backward(dy: Tensor, y: Tensor, dim: int) -> Tensor:
    """The gradient of ``y = log_softmax(z, dim)`` from its output."""
    return dy - torch.exp(y) * dy.sum(dim, keepdim=True)


# -- convolution and pooling ----------------------------------------------------------------
def _conv_private() -> Callable:
    op = _direct(torch.ops.aten.convolution_backward.default)

    def backward(dz, x, w, stride, padding, mask):
        return op(dz, x, w, [w.shape[0]], list(stride), list(padding), [1, 1], False, [0, 0],
                  1, list(mask))
    return backward


def _conv_probe() -> tuple:
    x, w = _r(2, 3, 6, 5), _r(4, 3, 3, 2)
    dz = _r(2, 4, *F.conv2d(x, w, None, (2, 1), (1, 0)).shape[2:])
    return dz, x, w, (2, 1), (1, 0), (True, True, True)


@_route("conv2d_backward", _conv_private, _conv_probe)
def conv2d_backward(dz: Tensor, x: Tensor, w: Tensor, stride: Sequence[int],
                    padding: Sequence[int], mask: Sequence[bool]
                    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(dx, dw, dbias)`` of ``F.conv2d(x, w, bias, stride, padding)``, each only where
    ``mask`` asks for it (else None)."""
    stride, padding = tuple(stride), tuple(padding)
    dx = torch.nn.grad.conv2d_input(x.shape, w, dz, stride, padding) if mask[0] else None
    dw = torch.nn.grad.conv2d_weight(x, w.shape, dz, stride, padding) if mask[1] else None
    db = dz.sum((0, 2, 3)) if mask[2] else None
    return dx, dw, db


def _max_pool_private() -> Callable:
    op = _direct(torch.ops.aten.max_pool2d_with_indices_backward.default)

    def backward(dy, x, window, stride, padding, indices):
        return op(dy, x, list(window), list(stride), list(padding), [1, 1], False, indices)
    return backward


def _pool_probe(with_indices: bool) -> Callable[[], tuple]:
    def probe():
        x = _r(2, 3, 5, 6)
        if with_indices:
            y, idx = F.max_pool2d(x, (3, 2), (2, 1), (1, 1), return_indices=True)
            return _r(*y.shape), x, (3, 2), (2, 1), (1, 1), idx
        y = F.avg_pool2d(x, (3, 2), (2, 1), (1, 1))
        return _r(*y.shape), x, (3, 2), (2, 1), (1, 1)
    return probe


@_route("max_pool2d_backward", _max_pool_private, _pool_probe(True))
def max_pool2d_backward(dy: Tensor, x: Tensor, window: Sequence[int], stride: Sequence[int],
                        padding: Sequence[int], indices: Tensor) -> Tensor:
    """The gradient of ``F.max_pool2d(x, window, stride, padding, return_indices=True)`` given
    its ``indices`` (positions in each ``(height * width)`` plane)."""
    n, c, h, w = x.shape
    grad = torch.zeros((n, c, h * w), dtype=dy.dtype, device=dy.device)
    grad.scatter_add_(2, indices.reshape(n, c, -1), dy.reshape(n, c, -1))
    return grad.view(n, c, h, w)


def _avg_pool_private() -> Callable:
    op = _direct(torch.ops.aten.avg_pool2d_backward.default)

    def backward(dy, x, window, stride, padding):
        return op(dy, x, list(window), list(stride), list(padding), False, True, None)
    return backward


@_route("avg_pool2d_backward", _avg_pool_private, _pool_probe(False))
def avg_pool2d_backward(dy: Tensor, x: Tensor, window: Sequence[int], stride: Sequence[int],
                        padding: Sequence[int]) -> Tensor:
    """The gradient of ``F.avg_pool2d(x, window, stride, padding)`` (padded zeros count)."""
    return _grad_of(lambda t: F.avg_pool2d(t, tuple(window), tuple(stride), tuple(padding)),
                    x, dy)


# -- losses ---------------------------------------------------------------------------------
_MEAN, _NO_IGNORE = 1, -100  # ATen's reduction code for 'mean'; its default ignore_index


def _nll_forward_private() -> Callable:
    op = _direct(torch.ops.aten.nll_loss_forward.default)
    return lambda logp, index: op(logp, index, None, _MEAN, _NO_IGNORE)


def _nll_probe() -> tuple:
    return torch.log_softmax(_r(4, 3), 1), torch.tensor([0, 2, 1, 2])


@_route("nll_loss_forward", _nll_forward_private, _nll_probe)
def nll_loss_forward(logp: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean(-logp[i, index[i]]), number of rows)``: the loss and the count that
    `nll_loss_backward` divides by."""
    count = torch.full((), index.shape[0], dtype=logp.dtype, device=logp.device)
    return F.nll_loss(logp, index), count


def _nll_backward_private() -> Callable:
    op = _direct(torch.ops.aten.nll_loss_backward.default)
    return lambda dy, logp, index, total: op(dy, logp, index, None, _MEAN, _NO_IGNORE, total)


def _nll_backward_probe() -> tuple:
    logp, index = _nll_probe()
    return torch.tensor(0.7, dtype=logp.dtype), logp, index, torch.tensor(4.0,
                                                                          dtype=logp.dtype)


@_route("nll_loss_backward", _nll_backward_private, _nll_backward_probe)
def nll_loss_backward(dy: Tensor, logp: Tensor, index: Tensor, total: Tensor) -> Tensor:
    """The gradient of `nll_loss_forward`'s loss for the 0-d output gradient ``dy``:
    ``-dy / total`` at ``[i, index[i]]``, 0 elsewhere."""
    grad = torch.zeros_like(logp)
    value = (-dy / total).to(logp.dtype).expand(index.shape[0], 1)
    return grad.scatter_(1, index.unsqueeze(1), value)


# -- batch normalisation --------------------------------------------------------------------
def _bn_forward_private() -> Callable:
    op = _direct(torch.ops.aten.native_batch_norm.default)
    return lambda x, gamma, beta, mean, var, momentum, eps: op(x, gamma, beta, mean, var, True,
                                                               momentum, eps)


def _bn_probe() -> tuple:
    return (_r(4, 3, 2, 2), _r(3), _r(3), torch.zeros(3, dtype=torch.float64),
            torch.ones(3, dtype=torch.float64), 0.1, 1e-5)


@_route("batch_norm_forward", _bn_forward_private, _bn_probe)
def batch_norm_forward(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor,
                       running_var: Tensor, momentum: float, eps: float
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """Training-mode batch normalisation over axis 1: ``(y, batch mean, 1 / sqrt(batch
    variance + eps))``, updating the running statistics in place (as ``F.batch_norm``)."""
    y = F.batch_norm(x, running_mean, running_var, gamma, beta, True, momentum, eps)
    axes = [0, *range(2, x.dim())]
    mean = x.mean(axes)
    invstd = torch.rsqrt(x.var(axes, unbiased=False) + eps)
    return y, mean, invstd


def _bn_backward_private() -> Callable:
    op = _direct(torch.ops.aten.native_batch_norm_backward.default)

    def backward(dy, x, gamma, mean, invstd, eps, mask):
        return op(dy, x, gamma, None, None, mean, invstd, True, eps, list(mask))
    return backward


def _bn_backward_probe() -> tuple:
    x, gamma, beta, mean, var, momentum, eps = _bn_probe()
    _, m, s = batch_norm_forward.public(x, gamma, beta, mean, var, momentum, eps)
    return _r(*x.shape), x, gamma, m, s, eps, (True, True, True)


@_route("batch_norm_backward", _bn_backward_private, _bn_backward_probe)
def batch_norm_backward(dy: Tensor, x: Tensor, gamma: Tensor, mean: Tensor, invstd: Tensor,
                        eps: float, mask: Sequence[bool]
                        ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(dx, dgamma, dbeta)`` of training-mode batch normalisation (batch statistics
    ``mean`` and ``invstd`` from `batch_norm_forward`), each only where ``mask`` asks."""
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(m) for t, m in zip((x, gamma), mask[:2])]
        beta = torch.zeros_like(gamma, requires_grad=mask[2])
        y = F.batch_norm(leaves[0], None, None, leaves[1], beta, True, 0.0, eps)
        wrt = [t for t in (*leaves, beta) if t.requires_grad]
        grads = iter(torch.autograd.grad(y, wrt, dy) if wrt else ())
    return tuple(next(grads) if m else None for m in mask)
