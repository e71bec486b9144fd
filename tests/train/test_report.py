"""What a training run prints and logs: the library logger follows the Python convention, the
Driver's console reporter follows ``verbose`` and ``print_freq``."""
import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optimus.errors import ConfigError, TrainingError
from optimus.train import Driver, FinishAfter
from optimus.train.log import LOGGER_NAME
from training_setups import X, Y, classifier, stream

LINE = re.compile(r"^\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] ")


def test_the_library_logger_has_a_null_handler_propagates_and_keeps_its_level():
    # A fresh interpreter: importing and training must not configure logging.
    code = (
        "import logging, numpy as np, optimus\n"
        "from optimus.train import Driver\n"
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from training_setups import classifier, stream\n"
        "log = logging.getLogger('optimus')\n"
        "trainer, _ = classifier()\n"
        "Driver(trainer, verbose=0).fit(stream(), {'learning_rate': 0.1}, max_iter=3)\n"
        "print([type(h).__name__ for h in log.handlers], log.propagate, log.level,\n"
        "      logging.getLogger().handlers, logging.getLogger('optimus.train').level)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "['NullHandler'] True 0 [] 0"
    assert out.stderr == ""  # no "No handlers could be found", no progress on stderr


def test_set_level_warning_on_the_logger_is_respected(caplog):
    trainer, _ = classifier()
    bad = [{"data": X[:8] * (np.nan if i == 2 else 1), "labels": Y[:8]} for i in range(4)]
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    try:
        with caplog.at_level(logging.DEBUG):  # the root takes everything that reaches it
            Driver(trainer, verbose=0).fit(bad, {"learning_rate": 0.1}, max_iter=4,
                                           print_freq=1, nan_exceptions=1)
    finally:
        logging.getLogger(LOGGER_NAME).setLevel(logging.NOTSET)
    records = [(r.levelname, r.getMessage()[:16]) for r in caplog.records
               if r.name.startswith(LOGGER_NAME)]
    assert records == [("WARNING", "Non-finite loss ")]  # no INFO progress, the warning


def test_progress_records_reach_an_application_that_configures_logging(caplog):
    trainer, _ = classifier()
    with caplog.at_level(logging.INFO, logger=LOGGER_NAME):
        Driver(trainer, verbose=0).fit(stream(), {"learning_rate": 0.1}, max_iter=4,
                                       print_freq=2)
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records[0][:2] == ("optimus.train", logging.INFO) and records[0][2].startswith(
        "2 / 4: ")
    assert records[-1][:2] == ("optimus", logging.INFO)
    assert records[-1][2].startswith("Training stopped: reached max_iter=4 (5 steps")


def test_verbose_0_prints_nothing(capsys):
    trainer, _ = classifier()
    Driver(trainer, verbose=0).fit(stream(), {"learning_rate": 0.1}, max_iter=6, print_freq=1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_lines_follow_print_freq_and_end_with_what_stopped_the_run(capsys):
    trainer, _ = classifier()
    Driver(trainer, verbose=2).fit(stream(), {"learning_rate": 0.1}, max_iter=9, print_freq=4)
    lines = capsys.readouterr().out.splitlines()
    assert all(LINE.match(line) for line in lines)
    bodies = [LINE.sub("", line) for line in lines]
    assert [b.split(":")[0] for b in bodies[:-1]] == ["4 / 9", "8 / 9"]
    assert re.fullmatch(r"Training stopped: reached max_iter=9 \(10 steps, 1 epoch completed, "
                        r"last loss \d\.\d{4}\)", bodies[-1])


def test_a_huge_print_freq_prints_only_the_final_line(capsys):
    trainer, _ = classifier()
    driver = Driver(trainer, extensions=[FinishAfter(epochs=2)])  # verbose=1, not a terminal
    driver.fit(stream(), {"learning_rate": 0.1}, print_freq=10**9)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "Training stopped: finished after 2 epochs" in lines[0]
    assert driver.stop_reason == "finished after 2 epochs"
    assert (driver.iteration, driver.epoch) == (10, 2)


def test_without_max_iter_lines_show_the_epoch(capsys):
    trainer, _ = classifier()
    Driver(trainer, verbose=2, extensions=[FinishAfter(epochs=2)]).fit(
        stream(), {"learning_rate": 0.1}, print_freq=5)
    bodies = [LINE.sub("", line) for line in capsys.readouterr().out.splitlines()]
    assert [b.split(":")[0] for b in bodies[:-1]] == ["5 (epoch 1)"]


def test_the_log_file_gets_every_line_whatever_verbose_says(tmp_path, capsys):
    trainer, _ = classifier()
    log = tmp_path / "train.log"
    Driver(trainer, log_file=log, verbose=0).fit(stream(), {"learning_rate": 0.1},
                                                 max_iter=6, print_freq=3)
    assert capsys.readouterr().out == ""
    lines = log.read_text().splitlines()
    assert [LINE.sub("", line).split(":")[0] for line in lines] == [
        "3 / 6", "6 / 6", "Training stopped"]


def test_a_terminal_gets_a_tqdm_bar_at_verbose_1(monkeypatch):
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    trainer, _ = classifier()
    Driver(trainer).fit(stream(), {"learning_rate": 0.1}, max_iter=4, print_freq=1)
    text = out.getvalue()
    assert "5/5" in text and "loss=" in text  # the bar, not one line per step
    assert " / 4: " not in text and "Training stopped: reached max_iter=4" in text


def test_bad_verbose_and_runs_nothing_would_end_are_refused():
    trainer, _ = classifier()
    with pytest.raises(ConfigError, match="verbose"):
        Driver(trainer, verbose=3)
    with pytest.raises(TrainingError, match="nothing would end the run.*FinishAfter"):
        Driver(trainer).fit(stream(), {"learning_rate": 0.1})
    with pytest.raises(TrainingError, match="print_freq"):
        Driver(trainer).fit(stream(), {"learning_rate": 0.1}, max_iter=2, print_freq=-1)


def test_a_one_pass_source_needs_no_max_iter():
    trainer, _ = classifier()
    driver = Driver(trainer, verbose=0)
    gen = ({"data": X[i:i + 8], "labels": Y[i:i + 8]} for i in range(0, 40, 8))
    driver.fit(gen, {"learning_rate": 0.1})
    assert driver.stop_reason == "the source is exhausted" and driver.iteration == 5
