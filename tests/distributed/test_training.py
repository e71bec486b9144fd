"""Two processes (gloo, localhost, spawned with torchrun's variables) train exactly as one
process does on the same global batches: the seed-002 MLP and the seed-000 ConvNet, both
engines, SGD with momentum and Adam; the seed-004 ConvNet's noise and dropout draw the numbers
one process draws; ranks stay identical, under bfloat16 autocast too; rank 0 alone writes; a
NaN on one rank rolls every rank back; a one-process checkpoint resumes on two processes.

All two-process runs happen in one spawned job (`worker.job_train`, started once per module);
each test compares its part with the same run in this process.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.distributed import cases, spawn, worker

TOLERANCE = 1e-5  # relative, on the whole parameter vector


def relative(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def flat(result: dict, prefix: str) -> np.ndarray:
    keys = sorted(k for k in result if k.startswith(prefix))
    return np.concatenate([np.asarray(result[k], np.float64).ravel() for k in keys])


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("distributed")
    # the one-process first half that the two-process job resumes from
    cases.train("mlp", "fast", "adam", out=directory / "one", steps=10)
    rank0, rank1 = spawn.run_ranks("train", directory, timeout=240,
                                   OPTIMUS_DIST_TIMEOUT="60")
    assert rank0.returncode == 0, f"rank 0 failed:\n{rank0.stdout[-4000:]}"
    # rank 1 fails on purpose at the very end (test_a_failing_rank_...), nowhere else
    assert rank1.returncode != 0 and "rank 1 fails on purpose" in rank1.stdout, \
        rank1.stdout[-4000:]
    (directory / "rank1.log").write_text(rank1.stdout)
    return directory


def ranks_of(directory: Path, name: str) -> tuple[dict, dict]:
    return tuple(dict(np.load(directory / f"{name}-rank{r}.npz")) for r in (0, 1))


def check_same_as_one_process(two: tuple[dict, dict], one: dict) -> None:
    rank0, rank1 = two
    assert sorted(rank0) == sorted(rank1) == sorted(one)
    for key in rank0:  # every parameter and optimizer state entry, bit for bit
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    assert relative(flat(rank0, "param/"), flat(one, "param/")) <= TOLERANCE
    assert relative(flat(rank0, "opt/"), flat(one, "opt/")) <= 10 * TOLERANCE
    assert rank0["loss"].shape == one["loss"].shape
    np.testing.assert_allclose(rank0["loss"], one["loss"], rtol=1e-5)  # the global loss


@pytest.mark.parametrize("model, engine, rule", worker.EQUIVALENCE,
                         ids=["-".join(c) for c in worker.EQUIVALENCE])
def test_two_processes_take_the_steps_of_one(job, model, engine, rule):
    check_same_as_one_process(ranks_of(job, f"{model}-{engine}-{rule}"),
                              cases.train(model, engine, rule))


def test_bfloat16_steps_keep_the_ranks_identical_and_close_to_one_process(job):
    """Under autocast each rank rounds its half of a weight gradient to bfloat16 before the
    sum, one process the whole: the same steps to bfloat16 rounding, not bit for bit."""
    rank0, rank1 = ranks_of(job, "bf16")
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    one = cases.train("convnet", "fast", "sgd", precision="bf16")
    start = {f"param/{k}": v for k, v in cases.convnet("fast", "sgd").param_values.items()}
    moved, expected = (flat(r, "param/") - flat(start, "param/") for r in (rank0, one))
    assert relative(moved, expected) <= 3e-2  # measured 1.2e-2; float32 steps are 5.5e-2 away
    np.testing.assert_allclose(rank0["loss"], one["loss"], rtol=1e-2)


def test_a_one_row_batch_leaves_a_rank_without_rows_and_the_step_still_matches(job):
    # 101 rows in shuffled batches of 25: every pass ends with one row, rank 1's alone
    check_same_as_one_process(ranks_of(job, "tail"),
                              cases.train("mlp", "reference", "adam", rows=101))


def test_nan_on_one_rank_rolls_back_every_rank(job):
    two = ranks_of(job, "nan")
    one = cases.train("mlp", "fast", "sgd", steps=6, nan_row=cases.NAN_ROW)
    assert np.isfinite(flat(one, "param/")).all() and len(one["loss"]) == 6  # rolled back
    check_same_as_one_process(two, one)


def test_monitor_decisions_and_files(job, tmp_path):
    two = ranks_of(job, "extensions")
    one = cases.train("mlp", "fast", "adam", out=tmp_path, extensions=True)
    check_same_as_one_process(two, one)
    for name in ("test_cost", "test_error"):  # sharded evaluation, reduced: the global means
        np.testing.assert_allclose(two[0][name], one[name], rtol=1e-6)
    assert float(one["learning_rate"]) < 1e-3  # ReduceLROnPlateau dropped it, on both
    written = sorted(p.name for p in (job / "files-rank0").iterdir())
    assert written == sorted(p.name for p in tmp_path.iterdir())
    assert {"best.npz", "best.json", "stats.csv", "blocks_mlp-case.checkpoint.npz"} <= set(
        written)
    assert not (job / "files-rank1").exists()  # rank 1 wrote nothing


def test_resume_a_one_process_checkpoint_on_two(job):
    two = ranks_of(job, "resume")
    check_same_as_one_process(two, cases.train("mlp", "fast", "adam"))


def test_a_failing_rank_gives_the_others_a_clear_error(job):
    assert "RuntimeError: rank 1 fails on purpose" in (job / "rank1.log").read_text()
    message = (job / "fail-rank0.txt").read_text()
    assert message.startswith("Driver.fit on rank 0 of 2: the process group failed during "
                              "iteration")
    assert "see that rank's output" in message


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_noise_and_dropout_draw_on_two_processes_what_one_draws(job, engine):
    two, one = ranks_of(job, f"random-{engine}"), cases.train_random(engine)
    for key in two[0]:
        np.testing.assert_array_equal(two[0][key], two[1][key], err_msg=key)
    np.testing.assert_array_equal(two[0]["rng"], one["rng"])  # the same numbers consumed
    assert relative(flat(two[0], "param/"), flat(one, "param/")) <= TOLERANCE
    np.testing.assert_allclose(two[0]["loss"], one["loss"], rtol=1e-5)


def test_batchnorm_ranks_stay_identical(job):
    rank0, rank1 = ranks_of(job, "batchnorm")
    assert any("running_mean" in key for key in rank0)
    for key in rank0:  # parameters and the averaged running statistics
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
    # after one step, the first BatchNorm's running mean (the rows-weighted average of the
    # ranks') is the whole batch's; the later ones see inputs normalised with each rank's own
    # statistics, so they are close to one process's, not equal
    two, one = ranks_of(job, "batchnorm-1")[0], cases.train_batchnorm(steps=1)
    np.testing.assert_allclose(two["param/norm0.running_mean"],
                               one["param/norm0.running_mean"], rtol=1e-5, atol=1e-7)
    for key in ("param/norm1.running_mean", "param/norm2.running_mean"):
        assert relative(two[key], one[key]) < 0.05


def test_ranks_drawing_different_batches_are_told_how_to_fix_it(job):
    for rank in (0, 1):
        message = (job / f"batches-rank{rank}.txt").read_text()
        assert "rank 1 drew a different first batch than rank 0" in message
        assert "numpy.random.seed" in message
