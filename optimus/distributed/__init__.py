"""Training on several processes and machines under PyTorch's launcher, ``torchrun``.

optimus brings no launcher and no communication layer of its own: ``torchrun`` starts the
processes, `torch.distributed` moves the numbers. `Driver.fit` uses this package when it finds
the launcher's environment:

- `group`: reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and joins the process group if the
  application has not (gloo on CPU, NCCL on CUDA, a timeout so a dead rank is an error, not a
  hang);
- `shard`: each rank's contiguous part of every global batch;
- `buckets`, `gradients`: gradients scaled by each rank's share of the rows and summed in
  buckets, so N processes take the step one process takes on the whole batch;
- `state`: parameters and optimizer state broadcast from rank 0, global values reduced.
"""
from .buckets import DEFAULT_BUCKET_BYTES, Bucket, make_buckets
from .gradients import GradientSync
from .group import (DEFAULT_TIMEOUT, active, collective, init, is_main, launched,
                    local_device, local_rank, rank, timeout_seconds, world_size)
from .shard import shard_batch, shard_rows
from .state import (all_reduce_sum, average_running_stats, batch_fingerprint,
                    broadcast_optimizer_state, broadcast_params, collective_device)

__all__ = ["init", "launched", "active", "rank", "world_size", "is_main", "local_rank",
           "local_device", "timeout_seconds", "DEFAULT_TIMEOUT", "collective", "shard_rows",
           "shard_batch",
           "GradientSync", "Bucket", "make_buckets", "DEFAULT_BUCKET_BYTES",
           "broadcast_params", "broadcast_optimizer_state", "all_reduce_sum",
           "average_running_stats", "batch_fingerprint", "collective_device"]
