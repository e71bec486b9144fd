"""What `Driver.fit` does differently when several processes train together (``torchrun``).

On one process every method here is a no-op that passes the batch through. Under a launcher,
`ScaleOut` joins the process group (`optimus.distributed.init`), broadcasts the parameters and
the optimizer state from rank 0 when the run starts, gives each step this rank's rows of the
global batch with its share of them as the gradient weight (and its place in the batch, where
random nodes draw their numbers: `optimus.draws`), and turns each rank's loss into the global
one: the loss of the whole batch, identical on every rank, so that every decision
taken from it (the logged loss, a non-finite loss's rollback) is the same everywhere.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from .. import distributed, draws
from ..errors import ConfigError, TrainingError


class ScaleOut:
    """The process-group side of one ``fit`` call.

    Args:
        graph: the graph being trained.
    """

    def __init__(self, graph: Any):
        self.graph = graph
        self.active = distributed.init(graph.device)
        self.rank = distributed.rank()
        self.world_size = distributed.world_size()
        if self.active and graph.device.type == "cuda":
            self._check_device()
        self.weight = 1.0
        self._rows: tuple[int, int, int] | None = None  # this rank's place in the batch
        self._sync: distributed.GradientSync | None = None
        self._checked = False

    def _check_device(self) -> None:
        """One GPU per process: the graph's parameters must be on this process's device."""
        here = torch.device("cuda", torch.cuda.current_device())
        wrong = [name for name, p in self.graph.params.items() if p.tensor.device != here]
        if wrong:
            raise ConfigError(
                f"Driver.fit on rank {self.rank}: graph '{self.graph.name}' has parameter "
                f"'{wrong[0]}' on {self.graph.params[wrong[0]].tensor.device}, but this "
                f"process computes on {here} (one GPU per process, LOCAL_RANK="
                f"{distributed.local_rank()}); build the graph with "
                f"device=optimus.distributed.local_device()", field="device")

    def start(self) -> None:
        """Rank 0's parameters and optimizer state everywhere; gradients summed from now on."""
        if not self.active:
            return
        with self.failures("the start of training"):
            distributed.broadcast_params(self.graph)
            distributed.broadcast_optimizer_state(self.graph.optimizer)
        self._sync = distributed.GradientSync(self.graph)

    def close(self) -> None:
        """Stop summing gradients (the graph trains on its own again)."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def local(self, batch: Mapping[str, Any], interrupted: bool) -> Mapping[str, Any]:
        """This rank's rows of the global ``batch``, its gradient weight set (and whether
        Ctrl-C reached this rank, summed with the gradients). A rank left without rows (a
        batch smaller than the number of ranks) computes on the batch's first row with
        weight 0, so that it still takes part in every collective."""
        if not self.active:
            return batch
        if not self._checked:
            self._check_same_batch(batch)
        part, rows, total = distributed.shard_batch(batch, self.rank, self.world_size)
        self._rows = (distributed.shard_rows(total, self.rank, self.world_size).start, rows,
                      total)
        if rows == 0:
            part, _, _ = distributed.shard_batch(batch, 0, total)  # its first row
            self._rows = (0, 1, total)
        self.weight = rows / total
        self._sync.weight = self.weight
        self._sync.set_flag(float(interrupted))
        return part

    def drawing(self) -> contextlib.AbstractContextManager:
        """The context of this rank's step: random nodes draw for the whole global batch and
        keep this rank's rows (`optimus.draws.global_rows`); nothing on one process."""
        if not self.active or self._rows is None:
            return contextlib.nullcontext()
        return draws.global_rows(*self._rows)

    def global_values(self, loss: float, interrupted: bool, iteration: int
                      ) -> tuple[float, bool]:
        """The loss of the whole global batch (rows-weighted sum of the ranks' losses: NaN or
        infinite on every rank when it is so on any), and whether Ctrl-C reached any rank
        (so that all stop after the same step). The fast engine brings both with its last
        gradient bucket; otherwise they take a collective of their own."""
        if not self.active:
            return loss, interrupted
        with self.failures(f"iteration {iteration}"):
            distributed.average_running_stats(self.graph, self.weight)
            summed = self._sync.take_summed()
            if summed is None:
                summed = distributed.all_reduce_sum([loss * self.weight, float(interrupted)])
        total, flags = summed
        return total, flags > 0

    def _check_same_batch(self, batch: Mapping[str, Any]) -> None:
        """Every rank must draw the same global batches; compare the first one's fingerprint."""
        self._checked = True
        prints: list[Any] = [None] * self.world_size
        with self.failures("the first batch"), distributed.collective():
            torch.distributed.all_gather_object(prints, distributed.batch_fingerprint(
                dict(batch)))
        differ = [r for r, p in enumerate(prints) if p != prints[0]]
        if differ:
            raise TrainingError(
                f"Driver.fit: rank{'s' if len(differ) > 1 else ''} "
                f"{', '.join(map(str, differ))} drew a different first batch than rank 0; "
                f"every process must see the same global batches (each takes its own rows of "
                f"them). Seed the data order identically on every rank: ShuffledScheme(..., "
                f"seed=...), numpy.random.seed(...) before minibatch(...), "
                f"torch.manual_seed(...) before a shuffling DataLoader")

    def failures(self, during: str) -> "_Failures":
        """A context turning a failed collective into a `TrainingError` naming this rank."""
        return _Failures(self, during)


class _Failures:
    def __init__(self, scale_out: ScaleOut, during: str):
        self.scale_out, self.during = scale_out, during

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if error is None or not isinstance(error, torch.distributed.DistError):
            return False
        s = self.scale_out
        raise TrainingError(
            f"Driver.fit on rank {s.rank} of {s.world_size}: the process group failed during "
            f"{self.during}: another rank stopped, crashed or did not answer within "
            f"{distributed.timeout_seconds():g} s (OPTIMUS_DIST_TIMEOUT); see that rank's "
            f"output for the cause. ({type(error).__name__}: {error})") from error


__all__ = ["ScaleOut"]
