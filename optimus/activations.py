"""The activation table: every ``act_type`` a node accepts, defined once.

Nodes with an ``act_type`` (Affine, CenteredAffine, Conv2D, Conv3D) and the activation nodes
(Sigmoid, Tanh, RectifiedLinear, SoftRectifiedLinear, Softmax, LogSoftmax) compute their
activation with ``function``; the fast kernels (`optimus.fast`) apply ``inplace`` to the fresh
tensors they own and differentiate with ``grad``, the formula autograd itself would use (through
`optimus.compat`), so both engines agree to rounding.

``act_type`` values:

============  =========================================================================
name          function
============  =========================================================================
linear        ``z`` (no activation)
relu          ``max(z, 0)``
sigmoid       ``1 / (1 + exp(-z))``
tanh          ``tanh(z)``
softmax       ``exp(z) / sum(exp(z))`` over axis 1 (the features, or the maps of a
              convolution)
log_softmax   ``log(softmax(z))`` over axis 1, computed stably
softplus      ``log(1 + exp(z))`` (``log(1 + exp(beta * z)) / beta`` in
              SoftRectifiedLinear, ``beta`` being its ``knee``; linear above
              ``beta * z > 20``)
soft_relu     the same as softplus: the original library's name
leaky_relu    ``z`` for ``z > 0``, else ``0.01 * z``
elu           ``z`` for ``z > 0``, else ``exp(z) - 1``
gelu          ``z * Phi(z)``, ``Phi`` the standard normal CDF (exact, not tanh-approximated)
============  =========================================================================
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import compat

Tensor = torch.Tensor
SOFTPLUS_THRESHOLD = 20.0  # F.softplus's default: linear above beta * z > 20


@dataclass(frozen=True)
class Activation:
    """One ``act_type``.

    Attributes:
        name: the ``act_type`` value.
        function: ``function(z, **params) -> y``, out of place: the reference.
        inplace: the same, allowed to overwrite ``z`` (which the caller owns).
        grad: ``grad(dy, y, z, **params) -> dz``; ``z`` is None unless ``keeps_input``.
        keeps_input: ``grad`` reads the pre-activation ``z``, so it must be kept.
        monotone: never decreasing, so ``act(max_pool(z)) == max_pool(act(z))``.
        params: the keyword parameters the functions take: ``axis`` (softmax, log_softmax)
            and ``beta`` (softplus); see `optimus.nodes.specs.ActivationSpec`.
    """

    name: str
    function: Callable[..., Tensor]
    inplace: Callable[..., Tensor]
    grad: Callable[..., Tensor]
    keeps_input: bool = False
    monotone: bool = False
    params: tuple[str, ...] = ()


def _identity(z: Tensor) -> Tensor:
    return z


def _softplus(z: Tensor, beta: float = 1.0) -> Tensor:
    return F.softplus(z, beta=beta)


def _softplus_grad(dy: Tensor, y: Tensor, z: Tensor, beta: float = 1.0) -> Tensor:
    return compat.softplus_backward(dy, z, beta, SOFTPLUS_THRESHOLD)


def _softmax(z: Tensor, axis: int = 1) -> Tensor:
    return torch.softmax(z, axis)


def _log_softmax(z: Tensor, axis: int = 1) -> Tensor:
    return torch.log_softmax(z, axis)


def _table(*entries: Activation) -> dict[str, Activation]:
    return {entry.name: entry for entry in entries}


ACTIVATIONS: dict[str, Activation] = _table(
    Activation("linear", _identity, _identity, lambda dy, y, z: dy, monotone=True),
    Activation("relu", torch.relu, torch.relu_,
               lambda dy, y, z: compat.threshold_backward(dy, y, 0), monotone=True),
    Activation("sigmoid", torch.sigmoid, torch.sigmoid_,
               lambda dy, y, z: compat.sigmoid_backward(dy, y), monotone=True),
    Activation("tanh", torch.tanh, torch.tanh_,
               lambda dy, y, z: compat.tanh_backward(dy, y), monotone=True),
    Activation("softmax", _softmax, _softmax,
               lambda dy, y, z, axis=1: compat.softmax_backward(dy, y, axis),
               params=("axis",)),
    Activation("log_softmax", _log_softmax, _log_softmax,
               lambda dy, y, z, axis=1: compat.log_softmax_backward(dy, y, axis),
               params=("axis",)),
    Activation("softplus", _softplus, _softplus, _softplus_grad, keeps_input=True,
               monotone=True, params=("beta",)),
    Activation("soft_relu", _softplus, _softplus, _softplus_grad, keeps_input=True,
               monotone=True, params=("beta",)),
    Activation("leaky_relu", F.leaky_relu, lambda z: F.leaky_relu_(z, 0.01),
               lambda dy, y, z: compat.leaky_relu_backward(dy, y, 0.01), monotone=True),
    Activation("elu", F.elu, F.elu_, lambda dy, y, z: compat.elu_backward(dy, y, 1.0),
               monotone=True),
    Activation("gelu", F.gelu, F.gelu, lambda dy, y, z: compat.gelu_backward(dy, z),
               keeps_input=True),
)
ACT_TYPES: tuple[str, ...] = tuple(ACTIVATIONS)
MONOTONE = frozenset(name for name, entry in ACTIVATIONS.items() if entry.monotone)
