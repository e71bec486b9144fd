"""Parameter initialisation: `random_init` and kin (parameters start at zero otherwise)."""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .errors import ConfigError
from .ports import Parameter

DRAW_CHUNK = 1 << 16  # values drawn (as float64) per piece: bounds the temporary memory


def _fill(param: Parameter, draw: Callable[[int], np.ndarray]) -> None:
    """Fill ``param`` with ``draw(n)``'s float64 values, a piece at a time: the same numbers, in
    the same order, as one draw of all its values, without a float64 copy of the whole parameter
    (NumPy's generators make only float64; 6 MB for a 1500x512 layer, which the process keeps
    once freed)."""
    flat = param.tensor.detach().view(-1)
    with torch.no_grad():
        for start in range(0, flat.numel(), DRAW_CHUNK):
            piece = flat[start:start + DRAW_CHUNK]
            piece.copy_(torch.from_numpy(draw(piece.numel())))


def _check(param: Parameter) -> None:
    if not isinstance(param, Parameter):
        raise ConfigError(f"expected a node parameter such as conv.weights, got {param!r}")


def random_init(param: Parameter, mean: float = 0.0, std: float = 0.025,
                seed: int | None = None) -> None:
    """Fill ``param`` with draws from a normal distribution ``N(mean, std**2)``.

    Args:
        seed: seeds a private NumPy generator for reproducible values; None draws from
            NumPy's global random state (as the original library did, so ``np.random.seed``
            makes a whole script reproducible).
    """
    _check(param)
    if std < 0:
        raise ConfigError(f"random_init of '{param.name}': std must be >= 0, got {std}",
                          field="std")
    rng = np.random.RandomState(seed) if seed is not None else np.random
    _fill(param, lambda n: rng.normal(loc=mean, scale=std, size=n))


def uniform_init(param: Parameter, low: float, high: float, seed: int | None = None) -> None:
    """Fill ``param`` with draws from ``U(low, high)``."""
    _check(param)
    rng = np.random.RandomState(seed) if seed is not None else np.random
    _fill(param, lambda n: rng.uniform(low=low, high=high, size=n))


def glorot_uniform_init(param: Parameter, gain: float = 1.0, seed: int | None = None) -> None:
    """Glorot/Xavier uniform: ``U(±gain·sqrt(6 / (fan_in + fan_out)))``; fans from the layout
    (Affine weights are ``(in, out)``, Conv weights ``(out, in, h, w)``)."""
    _check(param)
    shape = param.shape
    if len(shape) == 2:
        fan_in, fan_out = shape
    elif len(shape) == 4:
        receptive = shape[2] * shape[3]
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    else:
        raise ConfigError(f"glorot_uniform_init of '{param.name}': needs a 2-D or 4-D "
                          f"parameter, got shape {shape}")
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    uniform_init(param, -bound, bound, seed)
