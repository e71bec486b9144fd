"""The TensorBoard extension: a short run's event files, read back with TensorBoard's own
EventAccumulator, hold every step's loss and learning rate, every monitored value, the epoch
means and (when asked) parameter histograms."""
from __future__ import annotations

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import optimus
from optimus.data import DataStream, SequentialScheme
from optimus.train import FinishAfter, Monitor, accuracy
from optimus.train.extensions import TensorBoard


def events(log_dir) -> EventAccumulator:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture
def run(classifier, tmp_path):
    rng = np.random.RandomState(0)
    x, y = rng.randn(40, 6), rng.randint(0, 3, 40).astype("int32")
    stream = DataStream({"data": x, "labels": y}, SequentialScheme(40, 10))
    monitor = Monitor(classifier, stream, outputs=["loss"],
                      metrics={"accuracy": accuracy("likelihoods", "labels")}, prefix="valid")
    board = TensorBoard(tmp_path / "tb", histograms=True)
    driver = optimus.Driver(classifier, extensions=[monitor, board, FinishAfter(epochs=3)],
                            verbose=0)
    stats = driver.fit(stream, {"learning_rate": 0.05})
    return events(tmp_path / "tb"), stats


def test_every_step_loss_and_learning_rate(run):
    acc, stats = run
    losses = scalars(acc, "loss")
    assert [s for s, _ in losses] == list(range(12))  # 3 epochs of 4 batches
    np.testing.assert_allclose([v for _, v in losses], stats["loss"], rtol=1e-6)
    rates = scalars(acc, "learning_rate/learning_rate")  # float32 in the event file
    assert [s for s, _ in rates] == list(range(12))
    np.testing.assert_allclose([v for _, v in rates], 0.05, rtol=1e-7)


def test_monitored_values_and_epoch_means(run):
    acc, stats = run
    for name in ("valid_loss", "valid_accuracy"):
        recorded = stats[name][~np.isnan(stats[name])]
        got = scalars(acc, name)
        assert len(got) == 3
        np.testing.assert_allclose([v for _, v in got], recorded, rtol=1e-6)
    means = [v for _, v in scalars(acc, "epoch/loss")]
    np.testing.assert_allclose(means, np.asarray(stats["loss"]).reshape(3, 4).mean(axis=1),
                               rtol=1e-6)
    assert scalars(acc, "epoch/epoch") == [(3, 1.0), (7, 2.0), (11, 3.0)]


def test_parameter_histograms(run, classifier):
    acc, _ = run
    tags = set(acc.Tags()["histograms"])
    assert tags == {f"params/{name}" for name in classifier.params}
    last = acc.Histograms("params/hidden.weights")[-1]
    assert last.step == 11
    assert last.histogram_value.num == classifier.params["hidden.weights"].value.size
    np.testing.assert_allclose(last.histogram_value.sum,
                               classifier.params["hidden.weights"].value.sum(), rtol=1e-5)
