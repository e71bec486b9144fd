"""The global random states a training run draws from (torch on CPU and on every CUDA device,
NumPy, Python), as plain data.

A checkpoint records them so that a resumed run draws the same numbers (noise, dropout,
shuffles) as an uninterrupted one. Arrays stay arrays (they go into the checkpoint's .npz);
the rest is JSON.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def get_rng_state() -> dict[str, Any]:
    """``{'torch': uint8 array, 'numpy': (name, keys, pos, has_gauss, gauss), 'python': ...}``
    for torch's CPU generator, NumPy's global `RandomState` and Python's `random`, plus
    ``'cuda'``: one uint8 array per device, once CUDA has been used in this process."""
    state = {"torch": torch.get_rng_state().numpy().copy(),
             "numpy": tuple(np.random.get_state(legacy=True)),
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # one generator per device: dropout and noise on a GPU draw from these
        state["cuda"] = [s.numpy().copy() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `get_rng_state` returned (tuples may come back as lists from JSON)."""
    torch.set_rng_state(torch.from_numpy(np.asarray(state["torch"], dtype=np.uint8).copy()))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((str(name), np.asarray(keys, dtype=np.uint32), int(pos),
                         int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        states = [torch.from_numpy(np.asarray(s, dtype=np.uint8).copy()) for s in cuda]
        torch.cuda.set_rng_state_all(states[:torch.cuda.device_count()])


__all__ = ["get_rng_state", "set_rng_state"]
