"""`AutogradKernel`: a node the fast path has no kernel for, run inside a fast plan by autograd.

A graph with one node that no registered kernel covers (Dropout, BatchNorm, a port-fed
penalty, a user's own `Node` subclass) still runs on the fast engine: that node's step calls
the node's own ``outputs_of`` (its reference forward, so both engines compute it alike),
and when a backward pass will follow, it does so under ``torch.enable_grad`` on detached
inputs that require grad where the step needs their gradient. Its backward is one
``torch.autograd.grad`` of the outputs it kept, with the output gradients the plan computed,
accumulated into the plan's gradients. The rest of the graph keeps its explicit kernels.

The kernel never fuses a parameter update (its parameters go to the optimizer), folds no
decay and does not pass gradients on unchanged, so the planner treats it as opaque. Its
forward runs once per call, like the reference path's, so state a node changes in a training
call (BatchNorm's running statistics) moves once per call, and random draws (Dropout) come in
the same order as on the reference path.
"""
from __future__ import annotations

import torch

from ..nodes.base import Node
from .kernel import Binding, Kernel, accumulate, as_tensor

PARAM = "param:"  # binding key prefix of parameters, so that no parameter shadows a port


def param_key(short_name: str) -> str:
    """The binding key of the parameter ``short_name`` of a node run by `AutogradKernel`."""
    return PARAM + short_name


class AutogradKernel(Kernel):
    """Runs ``node.outputs_of`` and differentiates it with autograd (see the module doc).

    The node gets its inputs in the default (contiguous) memory order, as on the reference
    path, whatever order the kernels before it chose (channels-last convolutions, say): a
    node may reshape with ``view``, and random draws (Dropout's mask) follow memory order.
    """

    @classmethod
    def differentiable(cls, node: Node) -> frozenset[str]:
        float_ports = (p for p in node.inputs if p not in node.input_dtypes)
        return frozenset((*float_ports, *(param_key(k) for k in node.params)))

    def __init__(self, b: Binding):
        super().__init__(b)
        node = b.node
        self.ports = tuple((p, b.ins[p]) for p in node.inputs)
        self.params = tuple((k, b.ins[param_key(k)]) for k in node.params)
        self.outs = tuple(b.outs.items())
        self.grad_ports = tuple((p, s) for p, s in self.ports if p in b.need)
        self.grad_params = tuple(k for k, _ in self.params if param_key(k) in b.need)
        # what the backward needs: (outputs, leaves, leaf slots), kept in a private slot
        self.tape = b.private() if b.saves and b.need else None

    def _inputs(self, v) -> dict[str, torch.Tensor]:
        return {p: _contiguous(v[s]) for p, s in self.ports}

    def forward(self, v, training):
        if self.tape is None:  # no gradient wanted through this node
            params = {k: v[s] for k, s in self.params}
            outs = self.node.outputs_of(self._inputs(v), params, training)
            for port, slot in self.outs:
                v[slot] = _own(outs[port], params)
            return
        inputs, params, leaves, slots = self._inputs(v), {}, [], []
        for port, slot in self.grad_ports:
            inputs[port] = leaf = _leaf(inputs[port])
            if leaf.requires_grad:
                leaves.append(leaf)
                slots.append(slot)
        for key, slot in self.params:
            params[key] = v[slot]
            if key in self.grad_params:
                params[key] = leaf = _leaf(v[slot])
                leaves.append(leaf)
                slots.append(slot)
        with torch.enable_grad():
            outs = self.node.outputs_of(inputs, params, training)
        kept = []
        for port, slot in self.outs:
            out = outs[port]
            v[slot] = _own(out.detach(), params)
            if out.requires_grad:
                kept.append((out, slot))
        v[self.tape] = (kept, leaves, slots)

    def backward(self, v, g, lrs):
        if self.tape is None or v[self.tape] is None:
            return
        kept, leaves, slots = v[self.tape]
        outs, grads = [], []
        for out, slot in kept:
            dy = g[slot]
            if dy is not None:
                outs.append(out)
                grads.append(as_tensor(dy, out))
        if not outs or not leaves:
            return
        with torch.enable_grad():
            found = torch.autograd.grad(outs, leaves, grads, allow_unused=True)
        for slot, grad in zip(slots, found):
            if grad is not None:
                accumulate(g, slot, grad)


def _leaf(tensor: torch.Tensor) -> torch.Tensor:
    """A view of ``tensor`` (same memory: in-place updates still land) that autograd treats as
    a leaf requiring grad; integer tensors cannot, and stay as they are."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return tensor
    return tensor.detach().requires_grad_(True)


def _own(out: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``out``, copied if it is a parameter's memory (a Constant node returns its parameter):
    a call's results must not change with a later update, nor write to a parameter."""
    if params and any(out.data_ptr() == p.data_ptr() for p in params.values()):
        return out.clone()
    return out


def _contiguous(tensor):
    return tensor.contiguous() if isinstance(tensor, torch.Tensor) else tensor

