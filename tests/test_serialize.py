import inspect
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import optimus
from optimus import serialize
from optimus.errors import FormatError

NOTEBOOK_JSON = Path(__file__).parent / "fixtures" / "notebook_mnist_trainer.json"


def test_round_trip_gives_identical_outputs(classifier, batch, tmp_path):
    optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    loaded = optimus.load(tmp_path / "def.json", tmp_path / "params.npz")
    a = classifier(**batch, learning_rate=0.0)
    b = loaded(**batch, learning_rate=0.0)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert loaded.connections == classifier.connections
    assert loaded.updates == classifier.updates
    assert serialize.graph_to_dict(loaded) == serialize.graph_to_dict(classifier)


def test_loaded_graph_trains_like_the_original(classifier, batch, tmp_path):
    optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    loaded = optimus.load(tmp_path / "def.json", tmp_path / "params.npz")
    for _ in range(3):
        a, b = classifier(**batch, learning_rate=0.1), loaded(**batch, learning_rate=0.1)
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-6)


def test_definition_format(classifier, tmp_path):
    optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    doc = json.loads((tmp_path / "def.json").read_text())
    assert doc["type"] == "Graph" and doc["format_version"] == 1 and doc["name"] == "clf"
    assert doc["inputs"][2] == {"type": "Input", "name": "learning_rate", "shape": None,
                                "dtype": "float32"}
    assert doc["nodes"][0] == {"type": "Affine", "name": "hidden", "input_shape": [None, 6],
                               "output_shape": [None, 5], "act_type": "relu"}
    assert doc["loss"] == {"type": "Output", "name": "loss"}
    assert doc["updates"] == {"learning_rate": ["hidden.weights", "hidden.bias", "out.weights",
                                                "out.bias"]}
    with np.load(tmp_path / "params.npz", allow_pickle=False) as params:
        assert sorted(params.files) == sorted(classifier.params)


def test_the_notebooks_own_json_loads_and_runs(tmp_path):
    graph = optimus.load(NOTEBOOK_JSON)
    assert graph.name == "mnist_trainer"
    assert graph.inputs["data"].dtype == "float64"
    assert graph.nodes["conv"].output.shape == (None, 15, 10, 10)
    assert graph.params["affine.weights"].shape == (1500, 512)
    x = np.random.RandomState(0).rand(4, 1, 28, 28)  # float64, as the notebook passed
    out = graph(data=x, labels=np.arange(4), learning_rate=0.0)
    np.testing.assert_allclose(out["loss"], np.log(10), rtol=1e-5)  # zero parameters
    np.testing.assert_allclose(out["likelihoods"], 0.1, rtol=1e-5)


def test_definition_only_load_has_zero_parameters(classifier, tmp_path):
    optimus.save(classifier, tmp_path / "def.json")
    assert not (tmp_path / "params.npz").exists()
    loaded = optimus.load(tmp_path / "def.json")
    assert all(not v.any() for v in loaded.param_values.values())


def write_doc(tmp_path, doc):
    path = tmp_path / "def.json"
    path.write_text(json.dumps(doc))
    return path


def notebook_doc():
    return json.loads(NOTEBOOK_JSON.read_text())


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d["nodes"][2].update(type="Afine"),
     r"nodes\[2\]\.type: unknown node type 'Afine'\. Did you mean 'Affine'"),
    (lambda d: d["nodes"][0].pop("weight_shape"),
     r"nodes\[0\]\.weight_shape: missing field \(required by Conv3D\)"),
    (lambda d: d["nodes"][0].update(weight_shape=[15, 1, -9, 9]),
     r"nodes\[0\]\.weight_shape: .*'conv'.*positive int"),
    (lambda d: d["nodes"][0].update(act_type="rleu"), r"nodes\[0\]\.act_type: .*'rleu'"),
    (lambda d: d["nodes"][1].update(colour="red"), r"nodes\[1\]\.colour: unknown field"),
    (lambda d: d["nodes"][1].update(type="__import__('os').system('touch pwned')"),
     r"nodes\[1\]\.type: unknown node type"),
    (lambda d: d.update(inputs="data"), r"inputs: expected list"),
    (lambda d: d["inputs"][0].update(type="Output"), r"inputs\[0\]\.type: expected 'Input'"),
    (lambda d: d.update(format_version=99), r"format_version: 99 is newer"),
    (lambda d: d["connections"].update({"data": ["conv.inptu"]}),
     r"Graph 'mnist_trainer': connection sink 'conv.inptu'"),
    (lambda d: d.update(connections={"data": "conv.input"}),
     r"connections\.data: expected a list of names"),
])
def test_bad_definitions_name_the_field(tmp_path, edit, pattern):
    doc = notebook_doc()
    edit(doc)
    path = write_doc(tmp_path, doc)
    with pytest.raises(FormatError, match=str(path).replace(".", r"\.") + ".*" + pattern):
        optimus.load(path)
    assert not (Path.cwd() / "pwned").exists()


@pytest.mark.parametrize("text, pattern", [
    ('{"name": "g", "inputs": [', r"not valid JSON: .* line 1"),
    ("[1, 2]", r"expected a JSON object describing a Graph"),
    ("", r"not valid JSON"),
])
def test_corrupt_json(tmp_path, text, pattern):
    path = tmp_path / "def.json"
    path.write_text(text)
    with pytest.raises(FormatError, match=pattern):
        optimus.load(path)


def test_truncated_or_corrupt_npz(classifier, tmp_path):
    optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    data = (tmp_path / "params.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.npz: not a readable \.npz"):
        optimus.load(tmp_path / "def.json", tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(FormatError, match=r"junk\.npz"):
        optimus.load(tmp_path / "def.json", tmp_path / "junk.npz")


def test_pickled_arrays_are_refused(tmp_path):
    np.savez(tmp_path / "evil.npz", **{"hidden.weights": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(FormatError, match=r"evil\.npz"):
        serialize.load_params(tmp_path / "evil.npz")


def test_wrong_parameter_shape_in_file(classifier, tmp_path):
    optimus.save(classifier, tmp_path / "def.json")
    np.savez(tmp_path / "p.npz", **{"hidden.weights": np.zeros((2, 2))})
    with pytest.raises(FormatError, match=r"'hidden\.weights' has shape \(2, 2\).*\(6, 5\)"):
        optimus.load(tmp_path / "def.json", tmp_path / "p.npz")


def test_interrupted_save_keeps_the_previous_file(classifier, tmp_path, monkeypatch):
    optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    old_def = (tmp_path / "def.json").read_bytes()
    old_params = (tmp_path / "params.npz").read_bytes()

    def crash_midway(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash_midway)
    classifier.nodes["out"].bias.value = np.ones(3)
    with pytest.raises(KeyboardInterrupt):
        optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    assert (tmp_path / "def.json").read_bytes() == old_def
    assert (tmp_path / "params.npz").read_bytes() == old_params
    assert sorted(os.listdir(tmp_path)) == ["def.json", "params.npz"]  # no temp files left


def test_load_params_reads_everything(tmp_path):
    serialize.save_params({"a.b": np.arange(3.0)}, tmp_path / "p.npz")
    assert zipfile.is_zipfile(tmp_path / "p.npz")
    np.testing.assert_array_equal(serialize.load_params(tmp_path / "p.npz")["a.b"], [0, 1, 2])


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path):
    return os.stat(path).st_mode & 0o777


def test_files_get_the_permissions_the_umask_gives(classifier, tmp_path, umask):
    optimus.save(classifier, tmp_path / "def.json", tmp_path / "params.npz")
    serialize.save_params({"w": np.zeros(3)}, tmp_path / "other.npz")
    for name in ("def.json", "params.npz", "other.npz"):
        assert mode(tmp_path / name) == 0o666 & ~umask, name
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rewriting_a_file_keeps_its_mode(classifier, tmp_path, umask):
    path = tmp_path / "def.json"
    optimus.save(classifier, path)
    os.chmod(path, 0o640)
    optimus.save(classifier, path)
    assert mode(path) == 0o640
    assert optimus.load(path).name == classifier.name


# -- how the graph runs: engine, device, chunk size ----------------------------------------------
def rebuild(graph, **placement):
    return optimus.Graph(graph.name, list(graph.inputs.values()), list(graph.nodes.values()),
                         graph.connections, list(graph.outputs.values()), graph.loss,
                         graph.updates, **placement)


def test_defaults_are_not_recorded_and_other_settings_are(classifier, tmp_path):
    doc = serialize.graph_to_dict(classifier)
    assert not {"engine", "device", "chunk_size"} & set(doc)
    custom = rebuild(classifier, engine="reference", chunk_size=64)
    doc = serialize.graph_to_dict(custom)
    assert (doc["engine"], doc["chunk_size"]) == ("reference", 64) and "device" not in doc
    optimus.save(custom, tmp_path / "def.json")
    loaded = optimus.load(tmp_path / "def.json")
    assert (loaded.engine_choice, loaded.chunk_size, loaded.device.type) == ("reference", 64, "cpu")
    unchunked = rebuild(classifier, chunk_size=None)
    optimus.save(unchunked, tmp_path / "none.json")
    assert json.loads((tmp_path / "none.json").read_text())["chunk_size"] is None
    assert optimus.load(tmp_path / "none.json").chunk_size is None
    overridden = optimus.load(tmp_path / "def.json", engine="fast", chunk_size="auto")
    assert (overridden.engine_choice, overridden.chunk_size) == ("fast", "auto")


def test_unknown_top_level_fields_are_ignored_so_older_readers_load_newer_files(tmp_path):
    # What an older optimus does with the placement fields: the reader looks up the fields
    # it knows and ignores the rest.
    doc = json.loads(NOTEBOOK_JSON.read_text())
    doc.update(format_version=1, some_future_field={"x": 1})
    graph = serialize.graph_from_dict(doc)
    assert graph.name == doc["name"]
    with pytest.raises(FormatError, match="engine"):
        serialize.graph_from_dict({**doc, "engine": 3})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_that_is_not_here_is_named_with_the_way_out(classifier, tmp_path):
    doc = serialize.graph_to_dict(classifier)
    doc["device"] = "cuda:0"
    (tmp_path / "gpu.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"gpu.json: device: .*'cuda:0'.*device='cpu'"):
        optimus.load(tmp_path / "gpu.json")
    assert optimus.load(tmp_path / "gpu.json", device="cpu").device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_graph_is_saved_and_loaded_on_its_device(classifier, batch, tmp_path):
    gpu = serialize.graph_from_dict(serialize.graph_to_dict(classifier), device="cuda")
    gpu.param_values = classifier.param_values  # new nodes: nothing shared with the CPU graph
    optimus.save(gpu, tmp_path / "gpu.json", tmp_path / "gpu.npz")
    assert json.loads((tmp_path / "gpu.json").read_text())["device"] == "cuda"
    loaded = optimus.load(tmp_path / "gpu.json", tmp_path / "gpu.npz")
    assert loaded.device.type == "cuda"
    np.testing.assert_allclose(loaded(**batch, learning_rate=0.0)["loss"],
                               classifier(**batch, learning_rate=0.0)["loss"], rtol=1e-5)
    assert optimus.load(tmp_path / "gpu.json", device="cpu").device.type == "cpu"


# -- the 2015 format ------------------------------------------------------------------------------
def penalty_doc(version, **penalty):
    """The notebook's definition plus a WeightDecayPenalty on the dense layer's weights."""
    doc = json.loads(NOTEBOOK_JSON.read_text())
    assert "format_version" not in doc  # that is how a 2015 file is recognised
    if version is not None:
        doc["format_version"] = version
    doc["nodes"].append({"type": "WeightDecayPenalty", "name": "decay", "weight": 0.5,
                         **penalty})
    doc["connections"]["affine.weights"] = ["decay.input"]
    doc["connections"]["decay.output"] = ["decay_cost"]
    doc["outputs"].append({"type": "Output", "name": "decay_cost"})
    return doc


def needs_penalty_forms():
    if "form" not in inspect.signature(optimus.WeightDecayPenalty).parameters:
        pytest.skip("WeightDecayPenalty has no form field yet")


def test_a_2015_file_keeps_the_original_weight_decay(tmp_path):
    needs_penalty_forms()
    legacy = serialize.graph_from_dict(penalty_doc(None))
    assert legacy.nodes["decay"].get_config()["form"] == "mean_row_norm"
    weights = legacy.params["affine.weights"].value.astype(np.float64)
    rows = weights.reshape(len(weights), -1)
    expected = 0.5 * np.linalg.norm(rows, axis=1).mean()
    x = np.zeros((2, 1, 28, 28))
    out = legacy(data=x, labels=np.zeros(2, "int32"), learning_rate=0.0)
    np.testing.assert_allclose(out["decay_cost"], expected, rtol=1e-5)
    # saved again, the meaning is explicit in the current format
    optimus.save(legacy, tmp_path / "resaved.json")
    resaved = json.loads((tmp_path / "resaved.json").read_text())
    assert resaved["format_version"] == serialize.FORMAT_VERSION
    assert [n["form"] for n in resaved["nodes"] if n["name"] == "decay"] == ["mean_row_norm"]


def test_current_files_keep_their_weight_decay_form():
    needs_penalty_forms()
    current = serialize.graph_from_dict(penalty_doc(1))
    assert current.nodes["decay"].get_config()["form"] == "sum_squares"
    explicit = serialize.graph_from_dict(penalty_doc(None, form="sum_squares"))
    assert explicit.nodes["decay"].get_config()["form"] == "sum_squares"
    weights = current.params["affine.weights"].value.astype(np.float64)
    out = current(data=np.zeros((2, 1, 28, 28)), labels=np.zeros(2, "int32"),
                  learning_rate=0.0)
    np.testing.assert_allclose(out["decay_cost"], 0.5 * (weights ** 2).sum(), rtol=1e-5)
