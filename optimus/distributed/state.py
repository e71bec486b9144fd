"""Keeping the ranks identical: the starting state broadcast from rank 0, global values
(loss, monitored sums) reduced over the ranks, running statistics averaged.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .group import collective


def broadcast_params(graph: Any) -> None:
    """Every parameter of ``graph`` (trainable or not) takes rank 0's value."""
    with torch.no_grad():
        for param in graph.params.values():
            _broadcast(param.tensor.data)


def broadcast_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """The optimizer's state (Adam's moments and step counts, momentum buffers) takes rank
    0's values: its layout goes as a small object, each tensor by `broadcast`."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    layout: list[Any] = [None]
    if dist.get_rank() == 0:
        layout[0] = {
            index: {key: ("tensor", tuple(value.shape), str(value.dtype).split(".")[-1],
                          value.device == p.device) if isinstance(value, torch.Tensor)
                    else ("value", value)
                    for key, value in optimizer.state[p].items()}
            for index, p in enumerate(params) if optimizer.state.get(p)}
    with collective():
        dist.broadcast_object_list(layout, src=0)
    state = layout[0]
    for index, p in enumerate(params):
        entries = state.get(index)
        if entries is None:
            optimizer.state.pop(p, None)
            continue
        mine = optimizer.state[p]
        for key in list(mine):
            if key not in entries:
                del mine[key]
        for key, entry in sorted(entries.items()):
            if entry[0] == "value":
                mine[key] = entry[1]
                continue
            _, shape, dtype, on_param_device = entry
            device = p.device if on_param_device else torch.device("cpu")
            value = mine.get(key)
            if not (isinstance(value, torch.Tensor) and tuple(value.shape) == shape
                    and str(value.dtype).split(".")[-1] == dtype and value.device == device):
                value = mine[key] = torch.empty(shape, dtype=getattr(torch, dtype),
                                                device=device)
            _broadcast(value)


def collective_device() -> torch.device:
    """Where small tensors for a collective must live: this process's GPU under NCCL (which
    reduces no CPU tensor), else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _broadcast(tensor: torch.Tensor) -> None:
    """Broadcast from rank 0 in place, through the collective device if it lives elsewhere
    (Adam's step counts stay on the CPU next to CUDA parameters)."""
    device = collective_device()
    with collective():
        if tensor.device.type == device.type:
            dist.broadcast(tensor, src=0)
        else:
            moved = tensor.to(device)
            dist.broadcast(moved, src=0)
            tensor.copy_(moved.to(tensor.device))


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """``values`` summed over the ranks (float64, one collective)."""
    tensor = torch.tensor(list(values), dtype=torch.float64, device=collective_device())
    with collective():
        dist.all_reduce(tensor)
    return tensor.tolist()


def average_running_stats(graph: Any, weight: float) -> None:
    """Average the non-trainable floating parameters that a training call updates (BatchNorm's
    running statistics) over the ranks, each weighted by its share of the batch's rows, so
    that every rank keeps the same. Each rank normalises with its own rows' statistics (as
    DDP without SyncBatchNorm): the first BatchNorm's running mean is then the whole
    batch's, later ones (whose inputs were normalised per rank) and running variances are
    close to, not equal to, one process's."""
    tensors = [p.tensor.data for p in graph.params.values()
               if not p.trainable and p.tensor.is_floating_point()]
    if not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors]).mul_(weight)
    with collective():
        dist.all_reduce(flat)
    offset = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def batch_fingerprint(batch: dict[str, Any]) -> list[float]:
    """A few numbers that differ, almost surely, between two different global batches: the
    row count and a position-weighted sum of each numeric entry."""
    prints = []
    for name in sorted(batch):
        value = batch[name]
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or array.size == 0:
            continue
        flat = array.reshape(-1).astype(np.float64)
        prints.extend([float(flat.size), float(flat @ np.linspace(1.0, 2.0, flat.size))])
    return prints


__all__ = ["collective_device", "broadcast_params", "broadcast_optimizer_state", "all_reduce_sum",
           "average_running_stats", "batch_fingerprint"]
