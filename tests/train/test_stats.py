"""The statistics table: columns, CSV export, plotting, arrays for checkpoints."""
import csv
import io

import numpy as np
import pytest

from optimus.train import Driver, Extension, FinishAfter, Monitor, Stats
from training_setups import classifier, stream


def table():
    stats = Stats()
    for i in range(4):
        stats.append({"key": "run", "timestamp": 100.0 + i, "iteration": i, "epoch": i // 2,
                      "loss": 1.0 / (i + 1)})
        if i % 2:
            stats.update_last({"test_cost": 0.5 - i / 10})
    return stats


def test_columns_and_values():
    stats = table()
    assert stats.columns == ["key", "timestamp", "iteration", "epoch", "loss", "test_cost"]
    np.testing.assert_allclose(stats["test_cost"], [np.nan, 0.4, np.nan, 0.2])
    assert stats.last("test_cost") == pytest.approx(0.2) and stats.last("nothing") is None
    with pytest.raises(KeyError, match="columns are"):
        stats["accuracy"]


def test_csv_export(tmp_path):
    text = table().to_csv(tmp_path / "stats.csv")
    assert (tmp_path / "stats.csv").read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["test_cost"] == "" and float(rows[1]["test_cost"]) == pytest.approx(0.4)


def test_arrays_round_trip():
    stats = table()
    arrays = stats.to_arrays()
    assert arrays["iteration"].dtype == np.int64 and arrays["key"].dtype.kind == "U"
    again = Stats.from_arrays(arrays, stats.columns)
    assert again.rows == stats.rows and again.columns == stats.columns


def test_fit_returns_the_table_and_it_plots_in_one_call(tmp_path):
    pytest.importorskip("matplotlib")
    trainer, predictor = classifier()
    stats = Driver(trainer, extensions=[Monitor(predictor, stream(), prefix="test")]).fit(
        stream(), {"learning_rate": 0.1}, max_iter=9)
    assert {"iteration", "epoch", "timestamp", "loss", "test_loss"} <= set(stats.columns)
    ax = stats.plot(path=tmp_path / "curve.png")
    assert sorted(line.get_label() for line in ax.get_lines()) == ["loss", "test_loss"]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_per_epoch_monitored_values_are_read_back_with_recorded():
    trainer, predictor = classifier()
    seen = []

    class Seen(Extension):
        def after_monitor(self, driver, values):
            seen.append((driver.epoch, values["test_loss"]))

    monitor = Monitor(predictor, stream(), outputs=["loss"], prefix="test")
    stats = Driver(trainer, extensions=[monitor, Seen(), FinishAfter(epochs=3)],
                   verbose=0).fit(stream(), {"learning_rate": 0.1})
    steps, values = stats.recorded("test_loss")
    np.testing.assert_array_equal(values, [v for _, v in seen])
    np.testing.assert_array_equal(steps, [4, 9, 14])  # the last step of each epoch
    epochs, _ = stats.recorded("test_loss", x="epoch")
    np.testing.assert_array_equal(epochs, [0, 1, 2])  # counted from 0 while they ran
    assert [e for e, _ in seen] == [1, 2, 3]  # completed epochs when measured
    column = stats["test_loss"]
    assert np.isnan(column).sum() == 12 and column[4] == values[0]
    assert stats.last("test_loss") == values[-1] and stats.last("nothing") is None
    with pytest.raises(KeyError, match="columns are"):
        stats.recorded("test_accuracy")
