"""Where a graph's parameters live, and the rule for graphs that share nodes.

Graphs built from the same nodes share their parameter tensors (a trainer and its predictor
see the same numbers), so they must compute on the same device. `Graph(device=...)` moves the
parameters of its nodes to its device only when no other live graph still uses them on
another one; otherwise it raises `GraphError` naming the parameter, its node, both devices and
the other graph, rather than silently moving tensors from under that graph. Build every graph
that shares nodes with the same ``device``, or drop the old graphs first.
"""
from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import torch

from .ports import Parameter
from .wiring import error

# parameter -> the live graphs built over it (a graph that is garbage-collected drops out)
_users: weakref.WeakKeyDictionary[Parameter, weakref.WeakSet] = weakref.WeakKeyDictionary()


def place(graph: Any, params: Mapping[str, Parameter], device: torch.device) -> None:
    """Check that ``graph`` (being built on ``device``) may move ``params`` there, and record
    it as a user of each.

    Raises:
        GraphError: a parameter is on another device where another live graph uses it.
    """
    for name, param in params.items():
        here = param.tensor.device
        users = _users.get(param)
        if users is None:
            users = _users[param] = weakref.WeakSet()
        if not _same(here, device):
            for other in list(users):
                if other is not graph and _same(here, other.device):
                    raise error(graph.name, f"parameter '{name}' of node '{param.node}' is on "
                                f"{here}, where graph '{other.name}' uses it; building this "
                                f"graph on {device} would move it from under that graph. "
                                f"Build graphs that share nodes on the same device, or drop "
                                f"graph '{other.name}' first")
    for param in params.values():
        _users[param].add(graph)


def _same(a: torch.device, b: torch.device) -> bool:
    """Same device, with 'cuda' and 'cuda:<current>' alike."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        return True
    return a.index == b.index
