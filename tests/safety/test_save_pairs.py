"""`optimus.save` writes a consistent pair: killed (SIGKILL) at random instants while saving,
the files on disk always load as the old pair or the new pair, never a definition beside
another save's parameters; temporaries a killed save left are cleaned by the next save."""
from __future__ import annotations

import json
import os
import random
import signal
import time
import warnings

import numpy as np
import pytest

import optimus
from optimus import serialize, storage


def versioned_graph(version: int) -> optimus.Graph:
    """Same shapes in every version (a mix would load silently without the digest): the
    version is in the graph's name and in every parameter value."""
    x = optimus.Input("x", (None, 64))
    dense = optimus.Affine("dense", (None, 64), (None, 256), "linear")
    out = optimus.Output("y")
    graph = optimus.Graph(f"v{version}", [x], [dense], {"x": ["dense.input"],
                                                        "dense.output": ["y"]}, [out])
    graph.param_values = {name: np.full(p.shape, version, np.float32)
                          for name, p in graph.params.items()}
    return graph


def loaded_version(def_file, param_file) -> int:
    graph = optimus.load(def_file, param_file)
    version = int(graph.name[1:])
    for name, value in graph.param_values.items():
        assert np.all(value == version), f"{name} holds another save's values: a mixed pair"
    return version


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to kill a saving process")
def test_kill_9_at_100_random_instants_never_leaves_a_mixed_pair(tmp_path):
    def_file, param_file = tmp_path / "model.json", tmp_path / "model.npz"
    graphs = [versioned_graph(v) for v in range(4)]
    optimus.save(graphs[0], def_file, param_file)
    rng = random.Random(15)
    seen, between_renames = set(), 0
    for instant in range(100):
        read, write = os.pipe()
        with warnings.catch_warnings():  # a library imported by other tests (JAX) warns
            warnings.simplefilter("ignore")  # at fork; the child only saves files
            pid = os.fork()
        if pid == 0:  # the child saves versions in a loop until it is killed
            try:
                os.close(read)
                os.write(write, b"go")
                k = instant
                while True:
                    k += 1
                    optimus.save(graphs[k % 4], def_file, param_file)
            finally:
                os._exit(0)
        os.close(write)
        os.read(read, 2)
        os.close(read)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        recorded = json.loads(def_file.read_text())["params"]["sha256"]
        between_renames += storage.sha256(param_file) != recorded
        seen.add(loaded_version(def_file, param_file))
    assert len(seen) > 1  # the kills landed while different versions were being saved
    assert between_renames > 0  # and some between the two renames (the old pair's backup)
    optimus.save(graphs[1], def_file, param_file)  # a later save cleans what kills left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.npz"]


def test_a_crash_between_the_two_renames_loads_the_old_pair(tmp_path, monkeypatch):
    def_file, param_file = tmp_path / "m.json", tmp_path / "m.npz"
    optimus.save(versioned_graph(1), def_file, param_file)
    real = serialize.storage.atomic_write

    def crash(path, write):
        raise KeyboardInterrupt("killed before the definition was written")

    monkeypatch.setattr(serialize.storage, "atomic_write", crash)
    with pytest.raises(KeyboardInterrupt):
        optimus.save(versioned_graph(2), def_file, param_file)
    monkeypatch.setattr(serialize.storage, "atomic_write", real)
    assert loaded_version(def_file, param_file) == 1  # the new params are there, unused
    optimus.save(versioned_graph(3), def_file, param_file)
    assert loaded_version(def_file, param_file) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]


def test_parameters_from_another_save_are_refused_unless_asked(tmp_path):
    optimus.save(versioned_graph(1), tmp_path / "a.json", tmp_path / "a.npz")
    optimus.save(versioned_graph(2), tmp_path / "b.json", tmp_path / "b.npz")
    os.replace(tmp_path / "b.npz", tmp_path / "a.npz")
    with pytest.raises(optimus.FormatError, match="different saves"):
        optimus.load(tmp_path / "a.json", tmp_path / "a.npz")
    graph = optimus.load(tmp_path / "a.json", tmp_path / "a.npz", check_pair=False)
    assert graph.name == "v1" and np.all(graph.param_values["dense.weights"] == 2)


def test_other_parameter_files_load_without_a_digest_check(tmp_path):
    """The digest binds the definition to the file it was saved with; any other parameter
    file of the right shapes (a checkpoint's, SaveBest's) still loads."""
    optimus.save(versioned_graph(1), tmp_path / "a.json", tmp_path / "a.npz")
    serialize.save_params(versioned_graph(5).param_values, tmp_path / "other.npz")
    graph = optimus.load(tmp_path / "a.json", tmp_path / "other.npz")
    assert np.all(graph.param_values["dense.bias"] == 5)
    record = json.loads((tmp_path / "a.json").read_text())["params"]
    assert record["file"] == "a.npz" and len(record["sha256"]) == 64


def test_save_keeps_file_modes(tmp_path):
    def_file, param_file = tmp_path / "m.json", tmp_path / "m.npz"
    optimus.save(versioned_graph(1), def_file, param_file)
    os.chmod(def_file, 0o640)
    os.chmod(param_file, 0o600)
    optimus.save(versioned_graph(2), def_file, param_file)
    assert (def_file.stat().st_mode & 0o777, param_file.stat().st_mode & 0o777) == (0o640, 0o600)
