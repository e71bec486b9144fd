"""The fast execution path: static plans of explicit forward/backward kernels.

A graph whose every node has a kernel here runs through `FastEngine`; any other graph runs on
the reference path (`optimus.compile`: a torch Module differentiated by autograd). Both give
the same outputs and parameters to float rounding (``tests/test_fast*.py``).

Modules: `kernel` (the kernel contract and registry); `activations`, `dense`, `conv`,
`losses`, `combine`, `regularize`, `shape` (kernels by node family); `plan` (lowering and
static plans); `fusion` (pattern rewrites); `engine` (running plans and the optimizer).
"""
from . import activations, combine, conv, dense, losses, regularize, shape  # noqa: F401
from .engine import FastEngine
from .kernel import Binding, Kernel, covered_node_types, register
from .plan import NotCovered, lower


def uncovered(steps, shapes) -> list[str]:
    """Names (with types) of the nodes in ``steps`` that the fast path does not cover."""
    try:
        lower(steps, shapes)
    except NotCovered as err:
        return err.nodes
    return []


__all__ = ["FastEngine", "NotCovered", "Kernel", "Binding", "register", "covered_node_types",
           "uncovered"]
