"""`Kernel`: one node's forward and explicit backward over numbered value slots, and the
registry that maps a node class to its kernel.

A kernel is built once per execution plan with everything it needs bound in advance (the slots
it reads and writes, which input gradients the step needs, whether its parameters are updated
in place), so that at run time ``forward`` and ``backward`` are a few tensor calls and nothing
else. Values live in a plain list ``v`` indexed by slot; gradients in a parallel list ``g``.

Rules every kernel follows:

- never write in place to a tensor it did not create (inputs may be the caller's NumPy memory,
  gradients may be shared between slots);
- the gradient of a scalar value may be a Python float (the loss starts at ``1.0``);
- a parameter update fused into ``backward`` happens after every other use of the parameter
  (the planner fuses only parameters that no other kernel reads in its backward).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..nodes.base import Node
from ..ports import Shape

Tensor = torch.Tensor
Values = list  # slot -> tensor (or None)


@dataclass
class Binding:
    """Where a kernel's values live and what the plan asks of it.

    Attributes:
        node: the node computed (for a fused kernel, the node whose output it replaces).
        ins: input port (or parameter short name) -> slot.
        outs: output port -> slot.
        in_shapes: input port -> static shape (batch axis ``None``).
        need: input ports whose gradient the step needs.
        fused: parameter short name -> ``(group index, decay)`` for parameters that the
            kernel updates itself with plain SGD instead of producing a gradient:
            ``p -= lr * (grad + decay * p)``, ``decay`` folding in the gradient of L2 penalties
            on ``p`` (see `Kernel.decay`).
        saves: a backward pass will follow (keep what it needs).
        options: kernel options chosen by a fusion (e.g. ``act='linear'``), or by the plan:
            ``dtype``, the lower precision a kernel that `Kernel.autocasts` computes its
            products in (a training call under ``torch.autocast``), and ``hands_low``.
        private: allocates a slot for a value the kernel keeps for its backward.
    """

    node: Node
    ins: dict[str, int]
    outs: dict[str, int]
    in_shapes: dict[str, Shape]
    need: frozenset[str] = frozenset()
    fused: dict[str, tuple[int, float]] = field(default_factory=dict)
    saves: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    private: Callable[[], int] | None = None


class Kernel:
    """Base class: subclasses set the class attributes and define `forward` and `backward`.

    Class attributes:
        grad_ports: input ports (and parameter names) whose gradient `backward` can produce.
        fusable: parameter names whose plain-SGD update `backward` can apply in place.
        passes_grad: the output gradient goes unchanged to every input (a sum of scalars).
        autocasts: with ``options['dtype']``, computes its products in it, not around them.
        keeps_low: computes in its input's lower precision, hands output and gradient on so.

    A kernel that ``autocasts`` runs its matrix products or convolutions, forward and backward,
    on operands cast to the plan's ``dtype`` (autocast's), and hands out values and gradients
    in the parameters' precision (float32): every other kernel, the optimizer and the
    parameters never see another dtype.
    The one exception saves a round trip: a relu or linear output whose one reader autocasts
    too (``options['hands_low']``) goes to it, and its gradient comes back, in ``dtype``; so
    does one read by a chain of single kernels that keep the low precision (`keeps_low`:
    batch normalisation, max-pooling) ending at one that autocasts, as autocast's eager
    PyTorch keeps those maps in ``dtype``.
    """

    grad_ports: ClassVar[frozenset[str]] = frozenset()
    fusable: ClassVar[frozenset[str]] = frozenset()
    passes_grad: ClassVar[bool] = False
    autocasts: ClassVar[bool] = False
    keeps_low: ClassVar[bool] = False

    def __init__(self, b: Binding):
        self.node = b.node
        self.need = b.need
        self.fused = b.fused
        self.saves = b.saves

    @classmethod
    def differentiable(cls, node: Node) -> frozenset[str]:
        """The ports of ``node`` whose gradient `backward` can produce."""
        return cls.grad_ports

    @classmethod
    def decay(cls, node: Node) -> dict[str, float]:
        """``{port: k}`` for inputs whose gradient is ``k * input * output_gradient`` (an L2
        penalty): with a constant output gradient, the planner folds it into a fused update
        of the parameter feeding the port, and the kernel skips that gradient."""
        return {}

    @classmethod
    def supports(cls, node: Node, in_shapes: dict[str, Shape]) -> str | None:
        """None when this kernel computes ``node`` exactly (config and shapes), else the
        reason why not, in a few words (logged when a graph falls back); default: None."""
        return None

    def forward(self, v: Values, training: bool) -> None:
        """Read the input slots of ``v``, write the output slots."""
        raise NotImplementedError

    def backward(self, v: Values, g: Values, lrs: Sequence[float]) -> None:
        """Read output gradients from ``g``; add input gradients for the ports in ``need`` into
        ``g`` (with `accumulate`); apply fused updates with the rates ``lrs[group]``."""
        raise NotImplementedError


def accumulate(g: Values, slot: int, grad: Tensor | float) -> None:
    """Add ``grad`` to the gradient in ``slot`` (out of place: the old one may be shared)."""
    current = g[slot]
    g[slot] = grad if current is None else current + grad


def as_tensor(grad: Tensor | float, like: Tensor) -> Tensor:
    """A gradient that may be a Python float (of a scalar value) as a tensor like ``like``."""
    return grad if isinstance(grad, Tensor) else torch.full_like(like, grad)


_SCALARS: dict[tuple, Tensor] = {}
_MAX_SCALARS = 256  # a learning-rate schedule makes new factors: the cache is then emptied


def scalar(value: float, like: Tensor) -> Tensor:
    """``value`` as a 0-d tensor of ``like``'s dtype and device, cached.

    Multiplying a tensor by it is one dispatched op; by a Python number it is five (the number
    is wrapped in a float64 tensor, then cast), which in a small step is measurable (seed-002's
    two penalties: 2 of its 40 ops, 8 of its 113 dispatches). Same result: the number is
    rounded to ``like``'s dtype either way.
    """
    key = (value, like.dtype, like.device)
    found = _SCALARS.get(key)
    if found is None:
        if len(_SCALARS) >= _MAX_SCALARS:
            _SCALARS.clear()
        found = _SCALARS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return found


def sgd_update(param: Tensor, grad: Tensor, lr: float, decay: float) -> None:
    """A fused plain-SGD step ``param -= lr * (grad + decay * param)``, in place."""
    if decay:
        param.mul_(scalar(1.0 - lr * decay, param))
    param.sub_(grad, alpha=lr)


def param_grad(v: Values, g: Values, lrs: list, slot: int, grad: Tensor,
               fused: tuple[int, float] | None) -> None:
    """Hand on a parameter's gradient: applied at once by its fused plain-SGD update
    (``fused``: its group and decay, from `Binding.fused`), else added to its slot for the
    optimizer."""
    if fused is not None:
        sgd_update(v[slot], grad, lrs[fused[0]], fused[1])
    else:
        accumulate(g, slot, grad)


def unbroadcast(grad: Tensor | float, shape: torch.Size) -> Tensor | float:
    """Sum ``grad`` down to ``shape``: the gradient of a broadcast input."""
    if isinstance(grad, float) or grad.shape == shape:
        return grad
    extra = grad.dim() - len(shape)
    if extra:
        grad = grad.sum(dim=tuple(range(extra)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(dim=dims, keepdim=True) if dims else grad


_KERNELS: dict[type, type[Kernel]] = {}


def register(*node_classes: type) -> Callable[[type[Kernel]], type[Kernel]]:
    """Class decorator: ``kernel`` computes nodes of exactly these classes."""

    def add(kernel: type[Kernel]) -> type[Kernel]:
        for node_class in node_classes:
            if node_class in _KERNELS:
                raise ValueError(f"a fast kernel for {node_class.__name__} is already "
                                 f"registered ({_KERNELS[node_class].__name__})")
            _KERNELS[node_class] = kernel
        return kernel

    return add


def kernel_for(node: Node, in_shapes: dict[str, Shape]) -> type[Kernel] | None:
    """The kernel computing ``node``, or None when the fast path does not cover it.

    The lookup is by exact class: a subclass may change ``forward``, so it is not covered
    until it registers a kernel of its own.
    """
    return kernel_and_reason(node, in_shapes)[0]


def kernel_and_reason(node: Node, in_shapes: dict[str, Shape]
                      ) -> tuple[type[Kernel] | None, str | None]:
    """``(kernel, None)`` when the fast path covers ``node``, else ``(None, reason)``."""
    kernel = _KERNELS.get(type(node))
    if kernel is None:
        return None, f"no fast kernel for {type(node).__name__}"
    reason = kernel.supports(node, in_shapes)
    return (None, reason) if reason else (kernel, None)


def covered_node_types() -> list[str]:
    """Names of the node classes the fast path covers."""
    return sorted(cls.__name__ for cls in _KERNELS)
