"""A worker killed with SIGKILL under ``torchrun --max-restarts=1`` restarts the group, which
resumes from the last checkpoint and finishes with the parameters of an uninterrupted run (a
rank failing with an exception is tested at the end of `test_training`'s job)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.distributed import restartable, spawn
from tests.distributed.test_training import TOLERANCE, flat, relative


def test_sigkilled_worker_restarts_and_finishes_as_an_uninterrupted_run(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "--max-restarts=1", "--monitor-interval=0.5",
               "-m", "tests.distributed.restartable", str(tmp_path)]
    proc = subprocess.run(command, cwd=spawn.ROOT, env=spawn.environment(), timeout=180,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert (tmp_path / "killed").exists()  # the first attempt did lose a worker
    final = dict(np.load(tmp_path / "final.npz"))
    expected = restartable.train(None)
    assert sorted(final) == sorted(expected)
    # the one-process run sums each batch in one piece, two ranks in two: equal up to float32
    # rounding, as in test_training (the restarted two-process run itself replays exactly)
    assert relative(flat(final, ""), flat(expected, "")) <= TOLERANCE
