"""The seed-004 workflow on a CUDA device: ``Graph(..., device='cuda')`` and the Driver end to
end (monitoring, best model, checkpoint), a resume that is exact because checkpoints hold the
CUDA random state (the seed-004 trainer draws Gaussian noise on the device), and bfloat16
autocast. Skipped without CUDA."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import optimus
from optimus.data import DataStream, SequentialScheme
from optimus.examples import seed004_flux_conv
from optimus.train import Monitor, SaveBest, accuracy, load_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

RNG = np.random.RandomState(0)
X = RNG.rand(96, 1, 28, 28).astype("float32")
Y = X[:, 0, 14, :10].argmax(axis=1).astype("int64")


def run(max_iter, directory=None, resume=None, engine="auto", precision=None, seed=0):
    np.random.seed(0)
    torch.manual_seed(seed)
    trainer, predictor = seed004_flux_conv.build(engine=engine, device="cuda")
    test = DataStream({"images": X[:40], "labels": Y[:40]}, SequentialScheme(40, 16))
    save_best = SaveBest("test_accuracy", mode="max", graph=predictor)
    driver = optimus.Driver(trainer, output_directory=directory, verbose=0, extensions=[
        Monitor(predictor, test, metrics={"accuracy": accuracy("logits", "labels")},
                prefix="test", every_n_iterations=3), save_best])
    stats = driver.fit(DataStream({"images": X, "labels": Y}, SequentialScheme(96, 16)),
                       {"learning_rate": 3e-3}, max_iter=max_iter, resume=resume,
                       precision=precision)
    return trainer, driver, stats


@pytest.fixture
def exact_cuda():
    """cuDNN's deterministic algorithms in float32 (no TF32), for this test alone: its default
    algorithms may sum in another order from run to run (PyTorch's reproducibility notes)."""
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True,
                                    allow_tf32=False):
        yield


def test_seed004_workflow_trains_on_cuda_and_resumes_exactly(tmp_path, exact_cuda):
    whole, _, stats = run(11)
    assert whole.device.type == "cuda"
    assert all(p.tensor.is_cuda for p in whole.params.values())
    assert np.isfinite(stats["loss"]).all() and stats["loss"][-1] < stats["loss"][0]
    assert "test_accuracy" in stats.columns
    _, first, _ = run(5, directory=tmp_path)
    assert "cuda" in load_checkpoint(first.checkpoint_path).state["rng"]
    resumed, _, resumed_stats = run(11, resume=first.checkpoint_path, seed=99)
    for name, value in whole.param_values.items():
        np.testing.assert_array_equal(resumed.param_values[name], value, err_msg=name)
    np.testing.assert_array_equal(resumed_stats["loss"], stats["loss"])


def test_the_cuda_fast_engine_agrees_with_the_cpu_reference_on_a_step(exact_cuda):
    np.random.seed(0)
    cuda, _ = seed004_flux_conv.build(noise_std=0.0, device="cuda")
    values = cuda.param_values
    cpu_trainer, _ = seed004_flux_conv.build(noise_std=0.0, engine="reference")
    cpu_trainer.param_values = values
    batch = {"images": X[:32], "labels": Y[:32], "learning_rate": 3e-3}
    for _ in range(2):  # the loss before and after an Adam step
        np.testing.assert_allclose(cuda(**batch)["loss"], cpu_trainer(**batch)["loss"],
                                   rtol=1e-4)
    # Adam's first step is nearly lr * sign(gradient): compare the whole parameter vector
    mine, reference = (np.concatenate([v.ravel() for v in g.param_values.values()])
                       for g in (cuda, cpu_trainer))
    assert np.linalg.norm(mine - reference) <= 1e-3 * np.linalg.norm(reference)


def test_a_cuda_prediction_over_many_rows_matches_the_cpu_one(exact_cuda):
    np.random.seed(0)
    _, cuda = seed004_flux_conv.build(device="cuda")
    _, cpu = seed004_flux_conv.build(engine="reference")
    cpu.param_values = cuda.param_values
    images = np.random.RandomState(1).rand(700, 1, 28, 28).astype("float32")
    np.testing.assert_allclose(cuda(images=images)["logits"], cpu(images=images)["logits"],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("engine", ["reference", "auto"])
def test_bf16_autocast_trains_on_cuda(engine):
    graph, _, stats = run(11, engine=engine, precision="bf16")
    assert np.isfinite(stats["loss"]).all() and stats["loss"][-1] < stats["loss"][0]
    assert all(v.dtype == np.float32 for v in graph.param_values.values())
