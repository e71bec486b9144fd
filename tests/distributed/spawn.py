"""Starting the ranks of a test job as subprocesses with the variables ``torchrun`` sets, on a
free localhost port (gloo)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **extra}
    return env


def run_ranks(job: str, directory: Path, world_size: int = 2, timeout: float = 120,
              **extra: str) -> list[subprocess.CompletedProcess]:
    """Run ``tests.distributed.worker job directory`` as ``world_size`` ranks; wait for all."""
    port = str(free_port())
    procs = []
    for rank in range(world_size):
        env = environment(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                          LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=port, **extra)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.distributed.worker", job, str(directory)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
