"""Checkpoints: one atomic, pickle-free file; stop-and-resume equals an uninterrupted run
bit for bit (same seed, CPU)."""
import json
import os
import signal
import zipfile

import numpy as np
import pytest
import torch

from optimus.data import AddNoise, LoaderStream, minibatch
from optimus.errors import FormatError
from optimus.optim import SGD, Adam, RMSProp
from optimus.train import (CSVLog, Driver, Extension, Monitor, ReduceLROnPlateau, SaveBest,
                           load_checkpoint, save_checkpoint)
from optimus.train import checkpoint as checkpoint_module
from training_setups import X, Y, classifier, same_params, stream


def noisy_stream():
    return AddNoise(stream(shuffle=True, seed=3), std=0.2, which="data", seed=4)


RATES = {"SGD": 0.3, "Adam": 0.05, "RMSProp": 0.01}


def run(step_rule, source, max_iter, resume=None, directory=None, noise=True, seed=0):
    """A seeded trainer with monitoring, save-best and a learning-rate drop."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    trainer, predictor = classifier(step_rule, noise=noise)
    extensions = [Monitor(predictor, stream(batch_size=20), prefix="test", every_n_iterations=4),
                  SaveBest("test_loss"), ReduceLROnPlateau("test_loss", patience=1, factor=0.5)]
    driver = Driver(trainer, output_directory=directory, extensions=extensions)
    rate = RATES[type(step_rule).__name__]
    stats = driver.fit(source(), {"learning_rate": rate}, max_iter=max_iter, print_freq=0,
                       resume=resume)
    return trainer, driver, stats


def check_resume_is_exact(tmp_path, step_rule, source, stop_at, end, noise=True):
    whole, whole_driver, whole_stats = run(step_rule, source, end, noise=noise)
    _, first, _ = run(step_rule, source, stop_at, directory=tmp_path, noise=noise)
    # a resumed process starts from other random states
    resumed, driver, stats = run(step_rule, source, end, resume=first.checkpoint_path,
                                 noise=noise, seed=99)
    assert same_params(whole, resumed)
    assert whole_driver.hyperparams == driver.hyperparams
    assert (whole_driver.epoch, whole_driver.iteration) == (driver.epoch, driver.iteration)
    for column in whole_stats.columns:
        if column != "timestamp":
            np.testing.assert_array_equal(whole_stats[column], stats[column], err_msg=column)
    best_whole = whole_driver.extensions[1]
    best = driver.extensions[1]
    assert (best.best, best.best_iteration) == (best_whole.best, best_whole.best_iteration)
    for name, value in best_whole.best_params.items():
        np.testing.assert_array_equal(best.best_params[name], value)
    return whole_driver


@pytest.mark.parametrize("step_rule", [SGD(momentum=0.9, nesterov=True), Adam(),
                                       RMSProp(centered=True)], ids=repr)
def test_resume_mid_epoch_equals_an_uninterrupted_run(tmp_path, step_rule):
    whole = check_resume_is_exact(tmp_path, step_rule, noisy_stream, stop_at=12, end=31)
    if isinstance(step_rule, SGD):  # the drop happened and was carried over
        assert whole.hyperparams["learning_rate"] < RATES["SGD"]


def test_resume_at_an_epoch_boundary(tmp_path):
    check_resume_is_exact(tmp_path, Adam(), noisy_stream, stop_at=9, end=20)


def test_resume_with_the_notebooks_minibatch_generator(tmp_path):
    def source():
        return minibatch(X, Y, batch_size=7)  # NumPy's global random state
    check_resume_is_exact(tmp_path, Adam(), source, stop_at=11, end=25)


def test_resume_with_a_shuffling_torch_dataloader(tmp_path):
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))

    def source():
        loader = torch.utils.data.DataLoader(dataset, batch_size=6, shuffle=True)
        return LoaderStream(loader, ("data", "labels"))
    check_resume_is_exact(tmp_path, SGD(momentum=0.5), source, stop_at=10, end=22)


def test_resume_after_ctrl_c(tmp_path):
    whole, _, _ = run(Adam(), noisy_stream, 24)

    class CtrlC(Extension):
        def after_batch(self, driver, outputs):
            if driver.iteration == 13:
                os.kill(os.getpid(), signal.SIGINT)

    np.random.seed(0)
    torch.manual_seed(0)
    trainer, predictor = classifier(Adam(), noise=True)
    extensions = [Monitor(predictor, stream(batch_size=20), prefix="test", every_n_iterations=4),
                  SaveBest("test_loss"), ReduceLROnPlateau("test_loss", patience=1, factor=0.5),
                  CtrlC()]
    driver = Driver(trainer, output_directory=tmp_path, extensions=extensions)
    driver.fit(noisy_stream(), {"learning_rate": RATES["Adam"]}, max_iter=24, print_freq=0)
    assert driver.iteration == 14
    resumed, _, _ = run(Adam(), noisy_stream, 24, resume=driver.checkpoint_path, seed=5)
    assert same_params(whole, resumed)


def test_the_file_is_plain_data(tmp_path):
    trainer, _ = classifier(Adam())
    trainer(data=X[:8], labels=Y[:8], learning_rate=0.1)
    path = save_checkpoint(tmp_path / "c.npz", trainer, {"iteration": 3, "note": ("a", 1.5),
                                                         "array": np.arange(3)})
    with np.load(path, allow_pickle=False) as archive:
        files = set(archive.files)
        assert all(archive[k].dtype != object for k in files)
        doc = json.loads(archive["checkpoint.json"].tobytes().decode("utf-8"))
    assert {"param/hidden.weights", "optimizer/hidden.weights/exp_avg",
            "checkpoint.json"} <= files
    assert doc["type"] == "Checkpoint" and doc["definition"]["step_rule"]["type"] == "Adam"
    loaded = load_checkpoint(path)
    assert loaded.state["note"] == ("a", 1.5) and loaded.state["iteration"] == 3
    np.testing.assert_array_equal(loaded.state["array"], np.arange(3))
    again = loaded.graph()  # parameters and optimizer state: trains on identically
    for _ in range(2):
        trainer(data=X[:8], labels=Y[:8], learning_rate=0.1)
        again(data=X[:8], labels=Y[:8], learning_rate=0.1)
    assert same_params(trainer, again)


def test_bad_files_are_reported(tmp_path):
    trainer, _ = classifier()
    path = save_checkpoint(tmp_path / "c.npz", trainer, {})
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="cut.npz"):
        load_checkpoint(tmp_path / "cut.npz")
    np.savez(tmp_path / "params.npz", w=np.zeros(2))
    with pytest.raises(FormatError, match="not an optimus checkpoint"):
        load_checkpoint(tmp_path / "params.npz")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz")


def test_resuming_another_graph_or_step_rule_is_refused(tmp_path):
    trainer, _ = classifier(Adam())
    path = save_checkpoint(tmp_path / "c.npz", trainer, {})
    other, _ = classifier(SGD())
    with pytest.raises(FormatError, match="step rule"):
        Driver(other).fit(stream(), {"learning_rate": 0.1}, max_iter=5, resume=path)
    with zipfile.ZipFile(path) as zf, zipfile.ZipFile(tmp_path / "d.npz", "w") as out:
        for item in zf.namelist():
            if item != "param/out.bias.npy":
                out.writestr(item, zf.read(item))
    with pytest.raises(FormatError, match="out.bias"):
        Driver(trainer).fit(stream(), {"learning_rate": 0.1}, max_iter=5,
                            resume=tmp_path / "d.npz")


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer, _ = classifier()
    path = save_checkpoint(tmp_path / "c.npz", trainer, {"iteration": 1})

    def broken(fileobj, **arrays):
        fileobj.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, trainer, {"iteration": 2})
    monkeypatch.undo()
    assert load_checkpoint(path).state["iteration"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_fitting_again_on_the_same_source_carries_on_like_one_run():
    whole, _ = classifier(Adam(), noise=True)
    torch.manual_seed(0)
    Driver(whole).fit(noisy_stream(), {"learning_rate": 0.05}, max_iter=17, print_freq=0)
    split, _ = classifier(Adam(), noise=True)
    torch.manual_seed(0)
    driver, source = Driver(split), noisy_stream()
    driver.fit(source, {"learning_rate": 0.05}, max_iter=7, print_freq=0)
    stats = driver.fit(source, {"learning_rate": 0.05}, max_iter=17, print_freq=0)
    assert same_params(whole, split) and list(stats["iteration"]) == list(range(18))
    gen_whole, _ = classifier(SGD())
    np.random.seed(0)
    Driver(gen_whole).fit(minibatch(X, Y, 7), {"learning_rate": 0.1}, max_iter=12)
    gen_split, _ = classifier(SGD())
    np.random.seed(0)
    driver, source = Driver(gen_split), minibatch(X, Y, 7)
    driver.fit(source, {"learning_rate": 0.1}, max_iter=5)
    driver.fit(source, {"learning_rate": 0.1}, max_iter=12)
    assert same_params(gen_whole, gen_split) and driver.position == 13


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_training_file_gets_the_permissions_the_umask_gives(tmp_path, umask):
    trainer, predictor = classifier()
    monitor = Monitor(predictor, stream(), outputs=["loss"], prefix="test")
    exts = [monitor, SaveBest("test_loss", graph=predictor), CSVLog(tmp_path / "log.csv")]
    previous = os.umask(umask)
    try:
        Driver(trainer, output_directory=tmp_path, log_file=tmp_path / "train.log",
               extensions=exts, verbose=0).fit(stream(), {"learning_rate": 0.1}, max_iter=6,
                                               save_freq=3)
    finally:
        os.umask(previous)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["clf-run-0000003.npz", "clf-run-0000006.npz", "clf-run.checkpoint.npz",
                     "clf-run.json", "clf_predictor-run-best.json",
                     "clf_predictor-run-best.npz", "log.csv", "train.log"]
    for name in names:
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name
