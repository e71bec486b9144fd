"""Extensions fire when they should: driven by scripted monitored values (Keras' style)
and, where they compute something, checked against a direct computation."""
import csv
import hashlib
import io
import json
import logging

import numpy as np
import pytest

import optimus

from optimus.data import DataStream, SequentialScheme
from optimus.errors import ConfigError, TrainingError
from optimus.serialize import load_params
from optimus.train import (CSVLog, Driver, EarlyStopping, Extension, FinishAfter, Monitor,
                           ProgressBar, ReduceLROnPlateau, SaveBest, SaveCheckpoint,
                           accuracy, error_rate, load_checkpoint)
from training_setups import X, Y, classifier, stream


@pytest.fixture
def driver():
    trainer, _ = classifier()
    drv = Driver(trainer)
    drv.hyperparams = {"learning_rate": 1.0}
    return drv


def feed(driver, ext, values, record="val"):
    """Call ``after_monitor`` once per value, as a monitor would; returns where it stopped."""
    ext.before_training(driver)
    for i, value in enumerate(values):
        driver.iteration = i
        ext.after_monitor(driver, {record: value})
        if driver.stop_reason is not None:
            return i
    return None


# -- stopping -----------------------------------------------------------------------------
def test_early_stopping_waits_patience_monitorings_without_improvement(driver):
    ext = EarlyStopping("val", mode="min", patience=3)
    assert feed(driver, ext, [5, 4, 4.5, 4.2, 3.9, 4, 4, 4, 1]) == 7
    assert ext.tracker.best == 3.9 and "did not improve for 3" in driver.stop_reason


def test_early_stopping_on_a_target(driver):
    ext = EarlyStopping("acc", mode="max", target=0.999)
    assert feed(driver, ext, [0.97, 0.99, 0.9991, 0.5], record="acc") == 2
    assert "reached the target" in driver.stop_reason


def test_early_stopping_min_delta_and_other_records(driver):
    ext = EarlyStopping("val", patience=2, min_delta=0.1)
    assert feed(driver, ext, [1.0, 0.95, 0.92]) == 2  # improvements below min_delta
    driver.stop_reason = None
    quiet = EarlyStopping("val", patience=1)
    quiet.after_monitor(driver, {"other": 1.0})
    assert driver.stop_reason is None and quiet.tracker.best is None


def test_finish_after_epochs_or_iterations(driver):
    ext = FinishAfter(epochs=2)
    driver.epoch = 1
    ext.after_epoch(driver)
    assert driver.stop_reason is None
    driver.epoch = 2
    ext.after_epoch(driver)
    assert driver.stop_reason == "finished after 2 epochs"
    trainer, _ = classifier()
    drv = Driver(trainer, extensions=[FinishAfter(iterations=7)])
    stats = drv.fit(stream(), {"learning_rate": 0.1}, max_iter=None)
    assert len(stats) == 7 and drv.iteration == 7
    with pytest.raises(ConfigError, match="epochs or iterations"):
        FinishAfter()


# -- learning-rate drop ---------------------------------------------------------------------
def test_reduce_lr_on_plateau_divides_after_patience_and_waits_again(driver, caplog):
    ext = ReduceLROnPlateau("acc", mode="max", patience=2, factor=0.1, min_value=1e-3)
    rates = []
    ext.before_training(driver)
    with caplog.at_level(logging.WARNING, logger="optimus"):
        for value in [0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]:
            ext.after_monitor(driver, {"acc": value})
            rates.append(driver.hyperparams["learning_rate"])
    np.testing.assert_allclose(rates, [1, 1, 1, .1, .1, .1, .01, .01, .001, .001, .001, .001])
    assert "learning_rate 1 -> 0.1" in caplog.text


def test_reduce_lr_needs_a_learning_rate_hyperparam(driver):
    driver.hyperparams = {}
    with pytest.raises(TrainingError, match="hyperparams"):
        ReduceLROnPlateau("val").before_training(driver)
    with pytest.raises(ConfigError, match="factor"):
        ReduceLROnPlateau("val", factor=10)


# -- save best --------------------------------------------------------------------------------
def test_save_best_keeps_the_parameters_of_the_best_value(driver, tmp_path):
    path = tmp_path / "best.npz"
    ext = SaveBest("acc", mode="max", path=path)
    ext.before_training(driver)
    snapshots = []
    for value in [0.5, 0.7, 0.6]:
        with_value = {k: v + value for k, v in driver.graph.param_values.items()}
        driver.graph.param_values = with_value
        snapshots.append(with_value)
        ext.after_monitor(driver, {"acc": value})
    assert ext.best == 0.7
    for name, array in load_params(path).items():
        np.testing.assert_array_equal(array, snapshots[1][name])
        np.testing.assert_array_equal(ext.best_params[name], snapshots[1][name])


def test_save_best_defaults_to_the_output_directory(tmp_path):
    trainer, predictor = classifier()
    monitor = Monitor(predictor, stream(), prefix="train", metrics={"acc": accuracy()})
    best = SaveBest("train_loss")
    Driver(trainer, output_directory=tmp_path, extensions=[monitor, best]).fit(
        stream(), {"learning_rate": 0.5}, max_iter=14)
    assert best.params_path == tmp_path / "clf-run-best.npz" and best.params_path.exists()
    assert best.definition_path == tmp_path / "clf-run-best.json"
    assert best.best_iteration == 15 - 5  # after epochs 1 and 2; epoch 3 is never completed


def test_save_best_writes_a_pair_that_optimus_load_reads(tmp_path):
    trainer, predictor = classifier()
    monitor = Monitor(predictor, stream(), prefix="test", metrics={"accuracy": accuracy()})
    best = SaveBest("test_loss", graph=predictor)

    class Snapshot(Extension):  # the predictor's parameters at each monitoring
        def __init__(self):
            self.seen = []

        def after_monitor(self, driver, values):
            self.seen.append((values["test_loss"], predictor.param_values))

    snap = Snapshot()
    Driver(trainer, output_directory=tmp_path, extensions=[monitor, best, snap],
           verbose=0).fit(stream(), {"learning_rate": 2.0}, max_iter=24)
    assert best.definition_path == tmp_path / "clf_predictor-run-best.json"
    assert best.params_path == tmp_path / "clf_predictor-run-best.npz"
    loaded = optimus.load(best.definition_path, best.params_path)
    assert loaded.name == "clf_predictor" and loaded.updates == {}
    recorded = json.loads(best.definition_path.read_text())["params"]  # a consistent pair
    assert recorded["sha256"] == hashlib.sha256(best.params_path.read_bytes()).hexdigest()
    best_loss, best_params = min(snap.seen, key=lambda item: item[0])
    assert best.best == best_loss
    for name, value in best_params.items():
        np.testing.assert_array_equal(loaded.params[name].value, value)
    np.testing.assert_allclose(loaded(data=X, labels=Y)["loss"],
                               Monitor(loaded, stream(), outputs=["loss"]).evaluate()["loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(loaded(data=X, labels=Y)["loss"], best_loss, rtol=1e-5)
    in_memory = SaveBest("test_loss", graph=predictor)  # no directory: kept in memory
    Driver(trainer, extensions=[monitor, in_memory], verbose=0).fit(
        stream(), {"learning_rate": 0.1}, max_iter=5)
    assert in_memory.params_path is None and in_memory.definition_path is None
    rebuilt = in_memory.load()
    for name, value in in_memory.best_params.items():
        np.testing.assert_array_equal(rebuilt.params[name].value, value)
    with pytest.raises(ConfigError, match="graph"):
        SaveBest("test_loss", graph="predictor")
    with pytest.raises(TrainingError, match="no best model yet"):
        SaveBest("test_loss").load()


# -- monitor --------------------------------------------------------------------------------
def test_monitor_averages_over_the_stream_weighted_by_batch_size():
    trainer, predictor = classifier()
    uneven = DataStream({"data": X, "labels": Y}, SequentialScheme(len(X), 15))  # 15, 15, 10
    monitor = Monitor(predictor, uneven, prefix="test",
                      metrics={"error": error_rate(), "accuracy": accuracy("likelihoods")})
    values = monitor.evaluate()
    whole = predictor(data=X, labels=Y)
    np.testing.assert_allclose(values["test_loss"], whole["loss"], rtol=1e-5)
    error = np.mean(whole["likelihoods"].argmax(1) != Y)
    np.testing.assert_allclose(values["test_error"], error)
    np.testing.assert_allclose(values["test_accuracy"], 1 - error)
    assert set(values) == {"test_loss", "test_error", "test_accuracy"}


def test_monitoring_the_trainer_itself_never_trains_it():
    trainer, _ = classifier()
    before = trainer.param_values
    Monitor(trainer, stream(), outputs=["loss"]).evaluate()
    for k, v in trainer.param_values.items():
        np.testing.assert_array_equal(v, before[k])


def test_monitor_fires_every_n_iterations_and_feeds_other_extensions():
    trainer, predictor = classifier()

    class Seen(Extension):
        def __init__(self):
            self.values = []

        def after_monitor(self, driver, values):
            self.values.append((driver.iteration, dict(values)))

    seen = Seen()
    monitor = Monitor(predictor, stream(), outputs=["loss"], prefix="valid",
                      every_n_iterations=4)
    stats = Driver(trainer, extensions=[monitor, seen]).fit(
        stream(), {"learning_rate": 0.1}, max_iter=9)
    assert [i for i, _ in seen.values] == [3, 7]
    assert np.isnan(stats["valid_loss"]).sum() == 8
    assert stats.rows[3]["valid_loss"] == seen.values[0][1]["valid_loss"]


def test_monitor_rejects_what_it_cannot_average():
    trainer, predictor = classifier()
    with pytest.raises(ConfigError, match="likelihoods.*metric"):
        Monitor(predictor, stream(), outputs=["likelihoods"])
    with pytest.raises(ConfigError, match="no output 'cost'"):
        Monitor(predictor, stream(), outputs=["cost"])
    with pytest.raises(ConfigError, match="re-iterable"):
        Monitor(predictor, iter(stream()))


# -- files and display -------------------------------------------------------------------------
def test_csv_log_and_checkpoint_extensions_write_during_training(tmp_path):
    trainer, predictor = classifier()
    log_path, ckpt = tmp_path / "log.csv", tmp_path / "every3.npz"
    seen = []

    class Check(Extension):
        def after_batch(self, driver, outputs):
            if ckpt.exists():
                seen.append(load_checkpoint(ckpt).state["iteration"])

    exts = [Monitor(predictor, stream(), prefix="test"), CSVLog(log_path),
            SaveCheckpoint(ckpt, every_n_iterations=3), Check()]
    Driver(trainer, extensions=exts).fit(stream(), {"learning_rate": 0.1}, max_iter=9)
    rows = list(csv.DictReader(io.StringIO(log_path.read_text())))
    assert len(rows) == 10 and rows[4]["test_loss"] != "" and rows[3]["test_loss"] == ""
    assert list(rows[0])[:5] == ["key", "timestamp", "iteration", "epoch", "loss"]
    assert sorted(set(seen)) == [3, 6, 9]


def test_progress_bar_counts_steps():
    pytest.importorskip("tqdm")
    trainer, _ = classifier()
    out = io.StringIO()
    bar = ProgressBar(file=out, mininterval=0)
    Driver(trainer, extensions=[bar]).fit(stream(), {"learning_rate": 0.1}, max_iter=4)
    text = out.getvalue()
    assert "5/5" in text and "loss=" in text and bar.bar is None


# -- Flux fidelity ------------------------------------------------------------------------------
def flux_loop(accuracies, eta=3e-3):
    """The Flux model-zoo loop's bookkeeping (conv.jl): returns (rates after each epoch, the
    epoch it breaks at or None)."""
    best_acc, last_improvement, rates = 0.0, 0, []
    for epoch, acc in enumerate(accuracies, start=1):
        if acc >= 0.999:
            rates.append(eta)
            return rates, epoch
        if acc >= best_acc:
            best_acc, last_improvement = acc, epoch
        if epoch - last_improvement >= 5 and eta > 1e-6:
            eta /= 10.0
            last_improvement = epoch
        rates.append(eta)
        if epoch - last_improvement >= 10:
            return rates, epoch
    return rates, None


def run_flux_extensions(accuracies, scheduler_first):
    trainer, _ = classifier()
    driver = Driver(trainer, verbose=0)
    driver.hyperparams = {"learning_rate": 3e-3}
    plateau = ReduceLROnPlateau("acc", mode="max", patience=5, ties_improve=True,
                                min_value=1e-6, clamp_to_min=False)
    stop = EarlyStopping("acc", mode="max", patience=10, target=0.999, ties_improve=True,
                         reset_on_lr_drop=True)
    driver.extensions = [plateau, stop] if scheduler_first else [stop, plateau]
    for ext in driver.extensions:
        ext.before_training(driver)
    rates = []
    for epoch, acc in enumerate(accuracies, start=1):
        driver.iteration, driver.epoch = 10 * epoch, epoch  # one monitoring per epoch
        driver.record({"acc": acc})
        rates.append(driver.hyperparams["learning_rate"])
        if driver.stop_reason is not None:
            return rates, epoch
    return rates, None


FLUX_SEQUENCES = {
    "ties then plateau": [0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95] + [0.94] * 20,
    "drop then slow gains": [0.5, 0.6] + [0.55] * 5 + [0.6] * 3 + [0.61] + [0.5] * 30,
    "target": [0.98, 0.99, 0.9992, 0.5],
    "never improves": [0.7] + [0.6] * 40,
}


@pytest.mark.parametrize("name", sorted(FLUX_SEQUENCES))
@pytest.mark.parametrize("scheduler_first", [True, False])
def test_flux_semantics_reproduce_the_flux_loop(name, scheduler_first):
    accuracies = FLUX_SEQUENCES[name]
    expected_rates, expected_stop = flux_loop(accuracies)
    rates, stop = run_flux_extensions(accuracies, scheduler_first)
    assert stop == expected_stop
    np.testing.assert_allclose(rates, expected_rates, rtol=1e-12)


def test_ties_do_not_improve_by_default():
    trainer, _ = classifier()
    driver = Driver(trainer)
    strict = EarlyStopping("acc", mode="max", patience=2)
    assert feed(driver, strict, [0.9, 0.9, 0.9, 0.9], record="acc") == 2
    driver.stop_reason = None
    ties = EarlyStopping("acc", mode="max", patience=2, ties_improve=True)
    assert feed(driver, ties, [0.9, 0.9, 0.9, 0.9], record="acc") is None
    low = EarlyStopping("err", mode="min", patience=1, ties_improve=True, min_delta=0.1)
    assert feed(driver, low, [1.0, 0.9, 0.85], record="err") == 2  # 0.9 ties best - min_delta
    with pytest.raises(ConfigError, match="ties_improve"):
        ReduceLROnPlateau("acc", ties_improve=1)
    with pytest.raises(ConfigError, match="reset_on_lr_drop"):
        EarlyStopping("acc", patience=2, reset_on_lr_drop="yes")


def test_without_reset_on_lr_drop_patience_runs_through_a_drop():
    trainer, _ = classifier()
    driver = Driver(trainer, verbose=0)
    driver.hyperparams = {"learning_rate": 1.0}
    plateau = ReduceLROnPlateau("acc", mode="max", patience=2)
    stop = EarlyStopping("acc", mode="max", patience=3)
    driver.extensions = [plateau, stop]
    for ext in driver.extensions:
        ext.before_training(driver)
    for i, acc in enumerate([0.5, 0.4, 0.4, 0.4]):
        driver.iteration = i
        driver.record({"acc": acc})
    assert driver.lr_drops == 1 and driver.last_lr_drop == 2
    assert driver.stop_reason == "acc did not improve for 3 monitorings (best 0.5000)"
