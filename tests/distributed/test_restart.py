"""Under ``torchrun`` itself: a worker killed with SIGKILL under ``--max-restarts=1`` restarts
the group, which resumes from the last checkpoint and finishes with the parameters of an
uninterrupted run (a rank failing with an exception is tested at the end of `test_training`'s
job); and two "machines" (two torchrun agents meeting at a c10d rendezvous on localhost) train
as one process does."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from tests.distributed import restartable, spawn
from tests.distributed.test_training import TOLERANCE, flat, relative


def _finishes_as_one_process(directory):
    final = dict(np.load(directory / "final.npz"))
    expected = restartable.train(None)
    assert sorted(final) == sorted(expected)
    # the one-process run sums each batch in one piece, two ranks in two: equal up to float32
    # rounding, as in test_training (the restarted two-process run itself replays exactly)
    assert relative(flat(final, ""), flat(expected, "")) <= TOLERANCE


def test_sigkilled_worker_restarts_and_finishes_as_an_uninterrupted_run(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "--max-restarts=1", "--monitor-interval=0.5",
               "-m", "tests.distributed.restartable", str(tmp_path)]
    proc = subprocess.run(command, cwd=spawn.ROOT, env=spawn.environment(), timeout=180,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert (tmp_path / "killed").exists()  # the first attempt did lose a worker
    _finishes_as_one_process(tmp_path)


def test_two_nodes_meeting_at_a_c10d_rendezvous_train_as_one_process(tmp_path):
    endpoint = f"127.0.0.1:{spawn.free_port()}"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2",
               "--nproc_per_node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
               "--rdzv-id=two-nodes", "--monitor-interval=0.5",
               "-m", "tests.distributed.restartable", str(tmp_path), "--no-kill"]
    nodes = [subprocess.Popen(command, cwd=spawn.ROOT, env=spawn.environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    try:
        outputs = [node.communicate(timeout=180)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait()
    for node, out in zip(nodes, outputs):
        assert node.returncode == 0, out[-4000:]
    assert (tmp_path / "world_size").read_text() == "2"  # one group of two, not two of one
    assert not (tmp_path / "killed").exists()
    _finishes_as_one_process(tmp_path)
