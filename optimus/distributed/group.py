"""The process group: what the launcher (``torchrun``) says about this process, and joining
the group it describes when the application has not.

optimus builds no launcher and no communication layer: ``torchrun`` (PyTorch's elastic
launcher) starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; `torch.distributed` does the communication. This module
reads that environment and calls `torch.distributed.init_process_group` when needed.
"""
from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError

#: Seconds a collective waits for the other ranks before failing (a rank that died or hangs
#: gives the others an error instead of a hang); ``OPTIMUS_DIST_TIMEOUT`` overrides it.
DEFAULT_TIMEOUT = 300.0

_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """Whether a launcher such as ``torchrun`` started this process as one of several (its
    variables are set and ``WORLD_SIZE`` > 1)."""
    if not all(name in os.environ for name in _LAUNCHER_VARIABLES):
        return False
    return _env_int("WORLD_SIZE") > 1


def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"the launcher variable {name}={value!r} is not an integer; run the "
                          f"script with torchrun, or unset {name}", field=name) from None


def active() -> bool:
    """Whether this process belongs to an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the group's, or the launcher's ``RANK`` before the group is
    joined (so a script can print on rank 0 alone from its first line); 0 otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK") if launched() else 0


def world_size() -> int:
    """How many processes train together: the group's size, or the launcher's
    ``WORLD_SIZE`` before the group is joined; 1 otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE") if launched() else 1


def is_main() -> bool:
    """Whether this process writes files and logs: rank 0, or the only process."""
    return rank() == 0


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 when not launched)."""
    return _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0


def local_device() -> str:
    """The device this process should compute on: ``'cuda:{LOCAL_RANK}'`` when CUDA is
    available (one GPU per process on each machine), else ``'cpu'``. Pass it as
    ``Graph(..., device=optimus.distributed.local_device())``."""
    if torch.cuda.is_available():
        return f"cuda:{local_rank()}"
    return "cpu"


def timeout_seconds() -> float:
    """The collective timeout: ``OPTIMUS_DIST_TIMEOUT`` seconds, else `DEFAULT_TIMEOUT`."""
    value = os.environ.get("OPTIMUS_DIST_TIMEOUT")
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"OPTIMUS_DIST_TIMEOUT={value!r} must be a positive number of "
                          f"seconds", field="OPTIMUS_DIST_TIMEOUT")
    return seconds


def init(device: str | torch.device = "cpu") -> bool:
    """Join the process group the launcher describes, unless the application already has (or
    there is no launcher): gloo for CPU graphs, NCCL for CUDA ones (after making
    ``cuda:{LOCAL_RANK}`` this process's current device), with `timeout_seconds`.

    Returns:
        Whether several processes now train together (`active`).
    """
    if not dist.is_available():
        return False
    if dist.is_initialized() or not launched():
        return active()
    device = torch.device(device)
    backend = "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device.index if device.index is not None else local_rank())
        backend = "nccl"
    timeout = timedelta(seconds=timeout_seconds())
    store = _attempt_store(timeout)
    if store is None:
        dist.init_process_group(backend=backend, timeout=timeout)
    else:
        dist.init_process_group(backend=backend, store=store, rank=_env_int("RANK"),
                                world_size=_env_int("WORLD_SIZE"), timeout=timeout)
    atexit.register(_leave)  # only for a group optimus created
    return active()


def _attempt_store(timeout: timedelta) -> dist.Store | None:
    """Under torchrun's shared rendezvous store, a store whose keys are this attempt's own.

    torchrun (c10d rendezvous, ``--standalone``) lets the workers use its own TCP store, which
    outlives a restart; the process group of a restarted attempt would then read the previous
    attempt's addresses and fail to connect (pytorch/pytorch#135712). Prefixing the keys with
    the attempt number (``TORCHELASTIC_RESTART_COUNT``, the same on every worker of a
    restarted group) keeps attempts apart. None when torchrun does not share its store.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], _env_int("MASTER_PORT"),
                          _env_int("WORLD_SIZE"), is_master=False, timeout=timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"optimus/attempt_{attempt}", store)


@contextmanager
def collective() -> Iterator[None]:
    """Around collective calls only: their failures become `torch.distributed.DistError`
    (gloo reports a lost peer as a plain RuntimeError), which the driver reports by rank."""
    try:
        yield
    except dist.DistError:
        raise
    except RuntimeError as error:
        raise dist.DistError(str(error)) from error


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DEFAULT_TIMEOUT", "launched", "active", "rank", "world_size", "is_main",
           "local_rank", "local_device", "timeout_seconds", "init", "collective"]
