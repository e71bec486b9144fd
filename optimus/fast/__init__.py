"""The fast execution path: static plans of explicit forward/backward kernels.

A graph runs through `FastEngine` (unless built with ``engine='reference'``): each node on its
registered kernel, or, for a node no kernel covers, on an `AutogradKernel` that calls the
node's own forward and differentiates it with autograd, inside the same plan. The reference
path (`optimus.compile`: a torch Module differentiated by autograd) gives the same outputs and
parameters to float rounding (``tests/fast/``).

Modules: `kernel` (the kernel contract and registry); `activations`, `dense`, `conv`,
`losses`, `combine`, `regularize`, `shape` (kernels by node family); `autograd` (the fallback
kernel); `plan` (lowering and static plans); `fusion` (pattern rewrites); `engine` (running
plans and the optimizer).
"""
from . import activations, combine, conv, dense, losses, regularize, shape  # noqa: F401
from .autograd import AutogradKernel
from .engine import FastEngine
from .kernel import Binding, Kernel, covered_node_types, kernel_and_reason, register
from .plan import lower

__all__ = ["FastEngine", "AutogradKernel", "Kernel", "Binding", "register",
           "covered_node_types", "kernel_and_reason", "lower"]
