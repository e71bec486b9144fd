"""Resource caps checked before anything is allocated: what a definition (or a node built in
Python) may ask for.

A definition is data from anywhere: ``Affine`` with a 10⁹×10⁹ weight matrix or ``Add`` with
10¹² input ports must be refused with an error naming the node, the size asked and the limit,
not by the allocator (or never). Three caps:

- ``max_params``: parameter values (all parameters of one loaded definition together; one
  parameter of a node built in Python). Default 2**28 (1 GiB of float32); environment variable
  ``OPTIMUS_MAX_PARAMS``; ``optimus.load(..., max_params=N)``.
- ``max_ports``: input ports of one node (``num_inputs``). Default 4096;
  ``OPTIMUS_MAX_PORTS``; ``optimus.load(..., max_ports=N)``.
- Shapes: at most `MAX_RANK` axes, each at most `MAX_DIM`, fixed (`optimus.ports.as_shape`).

`budget` sets the caps for a block of code (what `optimus.load` does); `check_param` and
`check_ports` are called by `optimus.ports.Parameter` and the multi-input nodes.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator, Sequence

from .errors import ResourceLimitError

DEFAULT_MAX_PARAMS = 2**28
DEFAULT_MAX_PORTS = 4096
MAX_RANK = 32          # axes of any shape (NumPy allows 64, torch's kernels fewer)
MAX_DIM = 2**31 - 1    # size of one axis


class _Budget:
    """The caps in force, and what a definition being loaded has used so far."""

    def __init__(self, max_params: int, max_ports: int, cumulative: bool):
        self.max_params = max_params
        self.max_ports = max_ports
        self.cumulative = cumulative
        self.used = 0


_active: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "optimus_budget", default=None)


def _from_env(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise ResourceLimitError(f"environment variable {name}={text!r} is not an integer; "
                                 f"unset it or give a positive integer") from None
    if value <= 0:
        raise ResourceLimitError(f"environment variable {name}={text!r} must be positive")
    return value


def max_params() -> int:
    """The parameter cap in force: `budget`'s, else ``OPTIMUS_MAX_PARAMS``, else 2**28."""
    active = _active.get()
    return active.max_params if active else _from_env("OPTIMUS_MAX_PARAMS", DEFAULT_MAX_PARAMS)


def max_ports() -> int:
    """The per-node input-port cap in force: `budget`'s, else ``OPTIMUS_MAX_PORTS``, else
    4096."""
    active = _active.get()
    return active.max_ports if active else _from_env("OPTIMUS_MAX_PORTS", DEFAULT_MAX_PORTS)


def _positive(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ResourceLimitError(f"{name} must be a positive int, got {value!r}")
    return value


@contextlib.contextmanager
def budget(max_params: int | None = None, max_ports: int | None = None) -> Iterator[None]:
    """Within the block, every parameter created counts against one total of ``max_params``
    values, and no node may have more than ``max_ports`` input ports (None: the environment
    variable or default)."""
    caps = _Budget(_positive("max_params", max_params,
                             _from_env("OPTIMUS_MAX_PARAMS", DEFAULT_MAX_PARAMS)),
                   _positive("max_ports", max_ports,
                             _from_env("OPTIMUS_MAX_PORTS", DEFAULT_MAX_PORTS)),
                   cumulative=True)
    token = _active.set(caps)
    try:
        yield
    finally:
        _active.reset(token)


def check_param(name: str, shape: Sequence[int]) -> None:
    """Claim room for a parameter ``name`` of ``shape`` before it is allocated.

    Raises:
        ResourceLimitError: naming the parameter, the values asked and the limit.
    """
    size = math.prod(shape)
    active = _active.get()
    if active is None:
        limit, used = _from_env("OPTIMUS_MAX_PARAMS", DEFAULT_MAX_PARAMS), 0
    else:
        limit, used = active.max_params, active.used
    if used + size > limit:
        total = f" (with {used:,} already in this definition)" if used else ""
        raise ResourceLimitError(
            f"parameter '{name}' of shape {tuple(shape)} asks for {size:,} values{total}, over "
            f"the limit of {limit:,} (max_params); if you trust this definition, raise it with "
            f"optimus.load(..., max_params=N) or the OPTIMUS_MAX_PARAMS environment variable")
    if active is not None:
        active.used += size


def check_ports(node: str, count: int) -> None:
    """Refuse a node asking for more than the input-port cap, before creating any port."""
    limit = max_ports()
    if count > limit:
        raise ResourceLimitError(
            f"node '{node}' asks for {count:,} input ports, over the limit of {limit:,} "
            f"(max_ports); raise it with optimus.load(..., max_ports=N) or the "
            f"OPTIMUS_MAX_PORTS environment variable", node=node, field="num_inputs")


__all__ = ["budget", "check_param", "check_ports", "max_params", "max_ports",
           "DEFAULT_MAX_PARAMS", "DEFAULT_MAX_PORTS", "MAX_RANK", "MAX_DIM"]
