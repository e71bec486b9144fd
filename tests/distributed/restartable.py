"""The script of the torchrun tests: ``python -m torch.distributed.run ...
-m tests.distributed.restartable DIR [--no-kill]``. It checkpoints every 4 steps and resumes
from its checkpoint when there is one, as a restartable script does; on the first attempt rank 1
kills itself with SIGKILL during iteration 10 (a small MLP, Adam, shuffled batches of 7) unless
``--no-kill``. Rank 0 writes the final parameters to DIR/final.npz and the world size it ran in
to DIR/world_size. `train(None)` is the uninterrupted one-process run."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

import optimus
from optimus.data import DataStream, ShuffledScheme
from tests.train import training_setups


class _KillOnce(optimus.Extension):
    def __init__(self, directory: Path):
        self.directory = directory

    def after_batch(self, driver, outputs):
        if (driver.iteration == 10 and os.environ.get("RANK") == "1"
                and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0"):
            (self.directory / "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)


def train(directory: Path | None, kill: bool = True) -> dict[str, np.ndarray]:
    graph, _ = training_setups.classifier(optimus.optim.Adam())
    stream = DataStream({"data": training_setups.X, "labels": training_setups.Y},
                        ShuffledScheme(len(training_setups.Y), 7, seed=4))
    driver = optimus.Driver(graph, name="restart", output_directory=directory, verbose=0,
                            extensions=[_KillOnce(directory)] if directory and kill else [])
    checkpoint = driver.checkpoint_path
    resume = checkpoint if checkpoint is not None and checkpoint.exists() else None
    driver.fit(stream, {"learning_rate": 0.02}, max_iter=15, save_freq=4, resume=resume)
    return graph.param_values


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    params = train(out, kill="--no-kill" not in sys.argv[2:])
    if int(os.environ.get("RANK", "0")) == 0:
        np.savez(out / "final.npz", **params)
        (out / "world_size").write_text(os.environ.get("WORLD_SIZE", "1"))
