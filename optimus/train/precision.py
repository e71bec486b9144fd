"""``Driver.fit(precision='bf16')``: training steps under `torch.autocast` in bfloat16.

Autocast runs matrix products and convolutions in bfloat16 while parameters, their updates
and the loss stay float32: on GPUs with bfloat16 tensor cores (NVIDIA Ampere and later), and
on CPUs with AMX (Intel Xeon from Sapphire Rapids on), that makes them faster.
The reference engine's PyTorch operators autocast themselves; the fast engine reads the
autocast state and has its convolution and dense kernels cast their products' operands
(`optimus.fast.kernel.Kernel.autocasts`), keeping float32 every value another kernel reads
except the maps between two products (through batch normalisation and max-pooling too, as
autocast keeps them).
Evaluation calls (without update) compute in float32 either way.
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
        ConfigError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"Driver.fit: precision must be None, 'fp32' or 'bf16', got "
                          f"{precision!r}", field="precision")
    if precision != "bf16":
        return contextlib.nullcontext
    device_type = graph.device.type
    return lambda: torch.autocast(device_type=device_type, dtype=torch.bfloat16)


__all__ = ["PRECISIONS", "step_context"]
