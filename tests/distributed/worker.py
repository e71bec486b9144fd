"""One rank of a distributed test job: ``python -m tests.distributed.worker JOB DIR``, started
by `spawn.run_ranks` with the launcher's variables set. Each rank writes its results to
``DIR/{case}-rank{r}.npz``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

import optimus
from tests.distributed import cases
from tests.train import training_setups

#: (model, engine, step rule) of the equivalence runs
EQUIVALENCE = [(m, e, r) for m in ("mlp", "convnet") for e in ("fast", "reference")
               for r in ("sgd", "adam")]


def save(directory: Path, name: str, result: dict) -> None:
    rank = int(os.environ["RANK"])
    np.savez(directory / f"{name}-rank{rank}.npz", **result)


def job_train(directory: Path) -> None:
    """Every equivalence case, the NaN case, the extensions case, the resume case, and
    last a failing rank (rank 1 raises: its process exits with an error)."""
    rank = int(os.environ["RANK"])
    for model, engine, rule in EQUIVALENCE:
        save(directory, f"{model}-{engine}-{rule}", cases.train(model, engine, rule))
    save(directory, "nan", cases.train("mlp", "fast", "sgd", steps=6, nan_row=cases.NAN_ROW))
    out = directory / f"files-rank{rank}"  # each rank its own: rank 1's must stay empty
    save(directory, "extensions", cases.train("mlp", "fast", "adam", out=out,
                                              extensions=True))
    checkpoint = directory / "one" / "blocks_mlp-case.checkpoint.npz"  # one process wrote it
    save(directory, "resume", cases.train("mlp", "fast", "adam", resume=checkpoint))
    save(directory, "tail", cases.train("mlp", "reference", "adam", rows=101))
    save(directory, "bf16", cases.train("convnet", "fast", "sgd", precision="bf16"))
    for engine in ("fast", "reference"):
        save(directory, f"random-{engine}", cases.train_random(engine))
    save(directory, "batchnorm", cases.train_batchnorm())
    save(directory, "batchnorm-1", cases.train_batchnorm(steps=1))
    try:  # ranks drawing different global batches are told so, on every rank
        np.random.seed(rank)
        graph, _ = training_setups.classifier()
        optimus.Driver(graph, verbose=0).fit(
            optimus.minibatch(training_setups.X, training_setups.Y, 8),
            {"learning_rate": 0.1}, max_iter=3)
    except optimus.TrainingError as error:
        (directory / f"batches-rank{rank}.txt").write_text(str(error))
    # last: rank 1 fails; rank 0 must get a clear error (kept in a file), not hang
    try:
        job_fail(directory)
    except optimus.TrainingError as error:
        (directory / f"fail-rank{rank}.txt").write_text(str(error))


class _Fail(optimus.Extension):
    def after_batch(self, driver, outputs):
        if driver.iteration == 3 and int(os.environ["RANK"]) == 1:
            raise RuntimeError("rank 1 fails on purpose at iteration 3")


def job_fail(directory: Path) -> None:
    """Rank 1 raises during iteration 3: rank 0 must get a clear error, not hang."""
    graph, _ = training_setups.classifier()
    optimus.Driver(graph, extensions=[_Fail()], verbose=0).fit(
        training_setups.stream(), {"learning_rate": 0.1}, max_iter=50)


if __name__ == "__main__":
    torch.set_num_threads(1)
    globals()[f"job_{sys.argv[1]}"](Path(sys.argv[2]))
