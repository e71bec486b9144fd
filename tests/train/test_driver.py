"""The training loop: counting, epochs, stopping, logging, NaN rollback, Ctrl-C."""
import logging
import os
import signal

import numpy as np
import pytest

import optimus
from optimus.errors import TrainingError
from optimus.train import Driver, Extension, FinishAfter, load_checkpoint
from training_setups import X, Y, classifier, stream


class Recorder(Extension):
    """Notes every hook call as (hook, iteration, epoch)."""

    def __init__(self):
        self.calls = []

    def before_training(self, driver):
        self.calls.append(("before", driver.iteration, driver.epoch))

    def after_batch(self, driver, outputs):
        assert set(outputs) == {"loss", "likelihoods"}
        self.calls.append(("batch", driver.iteration, driver.epoch))

    def after_epoch(self, driver):
        self.calls.append(("epoch", driver.iteration, driver.epoch))

    def after_training(self, driver):
        self.calls.append(("after", driver.iteration, driver.epoch))


def test_max_iter_is_inclusive_and_progress_lines_are_logged(caplog):
    trainer, _ = classifier()
    with caplog.at_level(logging.INFO, logger="optimus"):
        driver = Driver(trainer, verbose=0)
        stats = driver.fit(stream(), {"learning_rate": 0.1}, max_iter=6, print_freq=3)
    assert list(stats["iteration"]) == list(range(7))
    assert list(stats["epoch"]) == [0] * 5 + [1] * 2  # 5 batches per pass
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split(":")[0] for m in messages if " / 6" in m] == ["3 / 6", "6 / 6"]
    assert messages[-1].startswith("Training stopped: reached max_iter=6 (7 steps, 1 epoch "
                                   "completed")
    assert driver.stop_reason == "reached max_iter=6"
    assert stats.columns[:5] == ["key", "timestamp", "iteration", "epoch", "loss"]


def test_hooks_fire_in_order_and_finite_sources_are_re_iterated():
    trainer, _ = classifier()
    rec = Recorder()
    driver = Driver(trainer, extensions=[rec, FinishAfter(epochs=2)])
    driver.fit(stream(), {"learning_rate": 0.1}, max_iter=None)
    assert rec.calls[0] == ("before", 0, 0)
    assert [c for c in rec.calls if c[0] == "epoch"] == [("epoch", 5, 1), ("epoch", 10, 2)]
    assert [c[1] for c in rec.calls if c[0] == "batch"] == list(range(10))
    assert rec.calls[-1] == ("after", 10, 2)
    assert driver.stop_reason == "finished after 2 epochs"
    assert (driver.iteration, driver.epoch, driver.position) == (10, 2, 0)


def test_a_generator_is_one_pass():
    trainer, _ = classifier()
    driver = Driver(trainer)
    gen = ({"data": X[i:i + 8], "labels": Y[i:i + 8]} for i in range(0, 24, 8))
    stats = driver.fit(gen, {"learning_rate": 0.1}, max_iter=None)
    assert len(stats) == 3 and driver.epoch == 1
    assert driver.stop_reason == "the source is exhausted"
    assert Driver(trainer).fit([], {"learning_rate": 0.1}, max_iter=3).rows == []


def test_extensions_may_change_hyperparams():
    trainer, _ = classifier()

    class Freeze(Extension):
        def after_batch(self, driver, outputs):
            driver.hyperparams["learning_rate"] = 0.0

    driver = Driver(trainer, extensions=[Freeze()])
    driver.fit(stream(), {"learning_rate": 0.5}, max_iter=0)
    after_one = trainer.param_values
    driver.fit(stream(), {"learning_rate": 0.5}, max_iter=3)  # first step moves, then frozen
    moved = trainer.param_values
    assert not all(np.array_equal(after_one[k], moved[k]) for k in moved)


def nan_at(index, batches=6):
    """A source whose batch ``index`` holds NaN data (a non-finite loss)."""
    out = []
    for i in range(batches):
        data = X[:8].copy()
        if i == index:
            data[0, 0] = np.nan
        out.append({"data": data, "labels": Y[:8]})
    return out


def test_without_nan_exceptions_a_non_finite_loss_stops(caplog):
    trainer, _ = classifier()
    driver = Driver(trainer, extensions=[FinishAfter(epochs=1)])
    driver.fit(nan_at(2), {"learning_rate": 0.1}, max_iter=None)
    assert driver.stop_reason.startswith("non-finite loss nan at iteration 2")
    assert "Training stopped: non-finite loss nan at iteration 2" in caplog.text


def test_ctrl_c_stops_after_the_step_and_leaves_a_loadable_checkpoint(tmp_path):
    trainer, _ = classifier()

    class CtrlC(Extension):
        def after_batch(self, driver, outputs):
            if driver.iteration == 3:
                os.kill(os.getpid(), signal.SIGINT)

    driver = Driver(trainer, output_directory=tmp_path, extensions=[CtrlC()])
    stats = driver.fit(stream(), {"learning_rate": 0.1}, max_iter=100)
    assert driver.stop_reason == "interrupted after iteration 3" and len(stats) == 4
    checkpoint = load_checkpoint(driver.checkpoint_path)
    assert checkpoint.state["iteration"] == 4 and checkpoint.state["position"] == 4
    restored = checkpoint.graph()
    for k, v in trainer.param_values.items():
        np.testing.assert_array_equal(restored.params[k].value, v)


def test_a_keyboard_interrupt_from_the_source_still_leaves_a_checkpoint(tmp_path):
    trainer, _ = classifier()

    def source():
        for i in range(10):
            if i == 5:
                raise KeyboardInterrupt
            yield {"data": X[:8], "labels": Y[:8]}

    driver = Driver(trainer, output_directory=tmp_path)
    driver.fit(source(), {"learning_rate": 0.1}, max_iter=None)
    assert driver.stop_reason == "interrupted after iteration 5"
    assert load_checkpoint(driver.checkpoint_path).state["iteration"] == 5


def test_files_written_with_an_output_directory(tmp_path):
    trainer, _ = classifier()
    log = tmp_path / "train.log"
    driver = Driver(trainer, name="r1", output_directory=tmp_path / "out", log_file=log)
    driver.fit(stream(), {"learning_rate": 0.1}, max_iter=6, save_freq=3, print_freq=3)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["clf-r1-0000003.npz", "clf-r1-0000006.npz", "clf-r1.checkpoint.npz",
                     "clf-r1.json"]
    assert "6 / 6:" in log.read_text()
    loaded = optimus.load(tmp_path / "out" / "clf-r1.json", tmp_path / "out" / "clf-r1-0000006.npz")
    for k, v in trainer.param_values.items():
        np.testing.assert_array_equal(loaded.params[k].value, v)


def test_bad_arguments_are_named():
    trainer, predictor = classifier()
    with pytest.raises(TrainingError, match="clf_predictor"):
        Driver(predictor)
    with pytest.raises(TrainingError, match="extensions\\[0\\]"):
        Driver(trainer, extensions=[object()])
    with pytest.raises(TrainingError, match="max_iter"):
        Driver(trainer).fit(stream(), {"learning_rate": 0.1}, max_iter=-1)
