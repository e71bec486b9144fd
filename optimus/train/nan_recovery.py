"""`NaNRecovery`: roll a run back to its last good state after a non-finite loss.

With ``Driver.fit(nan_exceptions=n)``, the driver keeps a snapshot of the parameters and the
optimizer state (Adam's moments, momentum buffers, step counts) taken *before* a step, when
the parameters are finite. A step whose loss is NaN or infinite has already updated the
parameters with that loss's gradients; the snapshot is copied back and training goes on with
the next batch (the bad batch takes no iteration), up to ``n`` times, then the run stops.

Snapshots are taken before the first step and then before every ``snapshot_every``-th
iteration (``Driver.fit(nan_snapshot_every=10)`` by default), on their own schedule, not the
printing one: a rollback loses the steps taken since the snapshot. Each costs one copy of the
parameters and the optimizer state into buffers allocated once, plus one finiteness check (a
sum per parameter): with Adam that is about 40% of a training step of a small model on CPU,
hence the default of every 10th step (a tenth of that); ``nan_snapshot_every=1`` loses only
the bad step. With ``nan_exceptions=0`` (the default) no snapshot is ever taken.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

from ..errors import ConfigError
from ..graph import Graph


def _check_count(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"Driver.fit: {field} must be an int >= {minimum}, got {value!r}",
                          field=field)
    return value


class NaNRecovery:
    """The rollback state of one `Driver.fit` call.

    Args:
        graph: the graph being trained.
        budget: how many non-finite losses to recover from (``nan_exceptions``).
        snapshot_every: take a snapshot before every this many steps (``nan_snapshot_every``).

    Attributes:
        left: recoveries still allowed.
        snapshot_iteration: the iteration before which the kept snapshot was taken (None
            while there is none).
    """

    def __init__(self, graph: Graph, budget: int = 0, snapshot_every: int = 10):
        self.graph = graph
        self.left = _check_count("nan_exceptions", budget, 0)
        self.snapshot_every = _check_count("nan_snapshot_every", snapshot_every, 1)
        self.snapshot_iteration: int | None = None
        self._params: dict[str, torch.Tensor] = {}
        self._optimizer: dict[str, Any] | None = None
        self._state_buffers: dict[tuple[int, str], torch.Tensor] = {}

    @property
    def active(self) -> bool:
        """Whether any recovery is left (else nothing is snapshotted)."""
        return self.left > 0

    def before_step(self, iteration: int) -> None:
        """Snapshot before step ``iteration`` when it is due and the parameters are finite."""
        if not self.active or (iteration % self.snapshot_every != 0
                               and self.snapshot_iteration is not None):
            return
        params = self.graph.params
        with torch.no_grad():
            # one reduction per tensor and one sync: a sum is finite only if every entry is
            sums = [p.tensor.sum(dtype=torch.float64) for p in params.values()]
            if sums and not bool(torch.isfinite(torch.stack(sums)).all()):
                return
            for name, param in params.items():
                buffer = self._params.get(name)
                if buffer is None or buffer.shape != param.tensor.shape:
                    self._params[name] = param.tensor.detach().clone()
                else:
                    buffer.copy_(param.tensor)
            optimizer = self.graph.optimizer
            if optimizer is not None:
                self._optimizer = self._copy_optimizer_state(optimizer.state_dict())
        self.snapshot_iteration = iteration

    def _copy_optimizer_state(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """``state_dict`` with every state tensor copied into a reused buffer."""
        state: dict[int, dict[str, Any]] = {}
        for index, entries in state_dict["state"].items():
            state[index] = {}
            for key, value in entries.items():
                if isinstance(value, torch.Tensor):
                    buffer = self._state_buffers.get((index, key))
                    if (buffer is None or buffer.shape != value.shape
                            or buffer.dtype != value.dtype or buffer.device != value.device):
                        buffer = self._state_buffers[(index, key)] = value.detach().clone()
                    else:
                        buffer.copy_(value)
                    value = buffer
                else:
                    value = copy.deepcopy(value)
                state[index][key] = value
        return {"state": state, "param_groups": copy.deepcopy(state_dict["param_groups"])}

    def recover(self) -> bool:
        """Restore the snapshot and use up one recovery; False when there is no recovery
        left or no snapshot to restore (the caller stops the run)."""
        if self.left <= 0 or self.snapshot_iteration is None:
            return False
        self.left -= 1
        with torch.no_grad():
            for name, param in self.graph.params.items():
                param.tensor.copy_(self._params[name])
        optimizer = self.graph.optimizer
        if optimizer is not None and self._optimizer is not None:
            # clones: load_state_dict may keep the tensors it is given, and the buffers are
            # refilled in place by the next snapshot
            state = {index: {key: value.clone() if isinstance(value, torch.Tensor) else
                             copy.deepcopy(value) for key, value in entries.items()}
                     for index, entries in self._optimizer["state"].items()}
            optimizer.load_state_dict({"state": state, "param_groups": copy.deepcopy(
                self._optimizer["param_groups"])})
        return True


__all__ = ["NaNRecovery"]
