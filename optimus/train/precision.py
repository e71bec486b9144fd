"""``Driver.fit(precision='bf16')``: training steps under `torch.autocast` in bfloat16.

Autocast runs matrix products and convolutions in bfloat16 while parameters, their updates
and the loss stay float32: on GPUs with bfloat16 tensor cores (NVIDIA Ampere and later) that
roughly doubles their speed and halves activation memory. It acts on PyTorch's own operators,
i.e. on the reference engine; the fast engine's kernels compute in the parameters' dtype and
mix badly with autocast, so a fast-engine graph is refused with a message saying what to do.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ContextManager

import torch

from ..errors import ConfigError

PRECISIONS = (None, "fp32", "bf16")


def step_context(graph: Any, precision: str | None) -> Callable[[], ContextManager[Any]]:
    """A factory of the context each training step runs in for ``precision``.

    Raises:
        ConfigError: an unknown precision, or bf16 on a graph that does not use the reference
            engine.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"Driver.fit: precision must be None, 'fp32' or 'bf16', got "
                          f"{precision!r}", field="precision")
    if precision != "bf16":
        return contextlib.nullcontext
    if graph.engine_choice != "reference":
        raise ConfigError(
            f"Driver.fit: precision='bf16' autocasts PyTorch operators, which graph "
            f"'{graph.name}' (engine={graph.engine_choice!r}) runs through its fast kernels "
            f"instead; build it with engine='reference' to train in bfloat16",
            field="precision")
    device_type = graph.device.type
    return lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)


__all__ = ["PRECISIONS", "step_context"]
