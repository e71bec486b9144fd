"""The optimus command line: demo, info, eval, export, validate, upgrade, draw, and one-line
user errors (exit status 2; --debug for the traceback)."""
import json
import sys

import numpy as np
import pytest

import optimus
from optimus import cli
from optimus.datasets import mnist
from optimus.examples.seed000_mnist_convnet import build_trainer
from tests.examples.results import parse_result


@pytest.fixture
def saved(tmp_path):
    np.random.seed(0)  # build_trainer draws its weights from NumPy's global state
    trainer = build_trainer()
    optimus.save(trainer, tmp_path / "def.json", tmp_path / "params.npz")
    return tmp_path / "def.json", tmp_path / "params.npz"


def test_info_lists_nodes_shapes_and_parameter_counts(saved, capsys):
    assert cli.main(["info", str(saved[0]), str(saved[1])]) == 0
    out = capsys.readouterr().out
    assert "Graph 'mnist_trainer'" in out
    assert "conv" in out and "(None, 15, 10, 10)" in out and "params=768,512" in out
    assert "774,872 parameters" in out
    assert out.count("engine=fast") == 5 and "autograd" not in out  # every node on a kernel


def test_info_names_the_nodes_that_run_through_autograd(tmp_path, capsys):
    data = optimus.Input("data", (None, 4))
    dense = optimus.Affine("dense", data.shape, (None, 3), act_type="relu")
    log = optimus.Log("log", epsilon=1.0)  # a node type without a fast kernel
    out = optimus.Output("out")
    graph = optimus.Graph("g", [data], [dense, log], optimus.ConnectionManager(
        [(data, dense.input), (dense.output, log.input), (log.output, out)]).connections, [out])
    assert graph.engines == {"dense": "fast", "log": "autograd"}
    optimus.save(graph, tmp_path / "def.json", tmp_path / "params.npz")
    assert cli.main(["info", str(tmp_path / "def.json"), str(tmp_path / "params.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines if line.endswith("engine=fast")] == ["dense"]
    assert [line.split()[1] for line in lines if line.endswith("engine=autograd")] == ["log"]
    assert any(line.startswith(f"  log runs through autograd: {graph.engine_reasons['log']}")
               for line in lines)


def test_eval_prints_the_accuracy_of_a_known_model(tmp_path, capsys):
    """A classifier that always answers 1 scores the share of 1s among the 10,000 MNIST test
    labels: 1,135 (the published count)."""
    data = optimus.Input("data", (None, 1, 28, 28))
    dense = optimus.Affine("dense", data.shape, (None, 10), act_type="linear")
    scores = optimus.Output("scores")
    graph = optimus.Graph("always_one", [data], [dense], optimus.ConnectionManager(
        [(data, dense.input), (dense.output, scores)]).connections, [scores])
    graph.param_values = {"dense.bias": np.eye(10)[1]}  # weights 0: the bias decides
    optimus.save(graph, tmp_path / "def.json", tmp_path / "params.npz")
    assert cli.main(["eval", str(tmp_path / "def.json"), str(tmp_path / "params.npz")]) == 0
    result = parse_result(capsys.readouterr().out)
    assert result == {"dataset": "mnist-test", "accuracy": "0.1135", "error": "0.8865"}


def test_eval_of_a_trainer_agrees_with_calling_it(saved, capsys):
    """The seed-000 trainer (random weights from a fixed seed) scored through its likelihoods
    output: the accuracy eval prints is the one the graph gives on the test set."""
    assert cli.main(["eval", str(saved[0]), str(saved[1]), "--output", "likelihoods"]) == 0
    printed = parse_result(capsys.readouterr().out)
    _, _, (images, labels) = mnist.load()
    graph = optimus.load(saved[0], saved[1])
    likelihoods = graph(data=images, labels=labels, learning_rate=0.0)["likelihoods"]
    expected = float(np.mean(likelihoods.argmax(axis=1) == labels))
    assert printed["accuracy"] == f"{expected:.4f}"
    assert printed["error"] == f"{1 - expected:.4f}"
    assert 0.0 < expected < 0.5  # untrained: near chance, not a degenerate constant


def test_unknown_demo_is_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "imagenet"])
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err


# -- parameter counts --------------------------------------------------------------------------
def test_info_counts_trained_and_all_parameters(tmp_path, capsys):
    """Only `hidden` is listed under the learning rate; BatchNorm's running statistics are
    parameters that no rate trains."""
    data, lr = optimus.Input("data", (None, 4)), optimus.Input("learning_rate", None)
    hidden = optimus.Affine("hidden", data.shape, (None, 3), act_type="relu")   # 12 + 3
    norm = optimus.BatchNorm("norm", hidden.output.shape)                        # 4 x 3
    out_node = optimus.Affine("out", norm.output.shape, (None, 2), act_type="linear")  # 6 + 2
    total = optimus.Sum("total")
    loss = optimus.Output("loss")
    graph = optimus.Graph("partial", [data, lr], [hidden, norm, out_node, total],
                          optimus.ConnectionManager([
                              (data, hidden.input), (hidden.output, norm.input),
                              (norm.output, out_node.input), (out_node.output, total.input),
                              (total.output, loss)]).connections, [loss], loss,
                          {"learning_rate": ["hidden.weights", "hidden.bias"]})
    optimus.save(graph, tmp_path / "def.json")
    assert cli.main(["info", str(tmp_path / "def.json")]) == 0
    out = capsys.readouterr().out
    assert "35 parameters in 8 tensors; trains 15 of 35 parameters in 2 tensors with SGD" in out


# -- eval on the sentiment corpus and on any .npz --------------------------------------------------
def always(n_in, klass, tmp_path, shape=None):
    data = optimus.Input("data", shape or (None, n_in))
    dense = optimus.Affine("dense", data.shape, (None, 2 if klass < 2 else 10), "linear")
    scores = optimus.Output("scores")
    graph = optimus.Graph("always", [data], [dense], optimus.ConnectionManager(
        [(data, dense.input), (dense.output, scores)]).connections, [scores])
    graph.param_values = {"dense.bias": np.eye(dense.params["bias"].shape[0])[klass]}
    optimus.save(graph, tmp_path / "def.json", tmp_path / "params.npz")
    return str(tmp_path / "def.json"), str(tmp_path / "params.npz")


def test_eval_on_the_sentiment_corpus(tmp_path, capsys):
    """Always 'negative' (1) on the books test set, whose 400 reviews alternate: 0.5."""
    from optimus.datasets import sentiment
    (_, _), (x, y) = sentiment.load("books")
    files = always(x.shape[1], 1, tmp_path)
    assert cli.main(["eval", *files, "--dataset", "sentiment"]) == 0
    result = parse_result(capsys.readouterr().out)
    assert result == {"dataset": "sentiment-books-test", "accuracy": f"{np.mean(y == 1):.4f}",
                      "error": f"{1 - np.mean(y == 1):.4f}"}


def test_eval_on_an_npz_of_arrays_named_like_the_inputs(saved, tmp_path, capsys):
    _, _, (images, labels) = mnist.load()
    np.savez(tmp_path / "rows.npz", data=images[:300], labels=labels[:300].astype("int32"))
    assert cli.main(["eval", str(saved[0]), str(saved[1]), "--dataset",
                     str(tmp_path / "rows.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    graph = optimus.load(saved[0], saved[1])
    out = graph(data=images[:300], labels=labels[:300], learning_rate=0.0)
    accuracy = float(np.mean(out["likelihoods"].argmax(axis=1) == labels[:300]))
    assert parse_result(lines[-1])["accuracy"] == f"{accuracy:.4f}"
    assert f"loss = {float(out['loss']):.6g}" in lines


def test_eval_of_a_predictor_on_an_npz_scores_its_labels_array(tmp_path, capsys):
    files = always(784, 7, tmp_path, shape=(None, 1, 28, 28))
    labels = np.array([7, 7, 1, 7])
    np.savez(tmp_path / "rows.npz", data=np.zeros((4, 1, 28, 28), "float32"), labels=labels)
    assert cli.main(["eval", *files, "--dataset", str(tmp_path / "rows.npz")]) == 0
    assert parse_result(capsys.readouterr().out)["accuracy"] == "0.7500"


# -- export, validate, upgrade, draw -----------------------------------------------------------
def test_export_writes_an_onnx_model_of_the_chosen_outputs(saved, tmp_path, capsys):
    import onnx
    path = tmp_path / "model.onnx"
    assert cli.main(["export", str(saved[0]), str(saved[1]), "-o", str(path),
                     "--outputs", "likelihoods"]) == 0
    assert "inputs data -> outputs likelihoods" in capsys.readouterr().out
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["data"]
    assert [o.name for o in model.graph.output] == ["likelihoods"]


def test_validate_lists_every_problem_with_its_path(saved, tmp_path, capsys):
    doc = json.loads(saved[0].read_text())
    doc["nodes"][0]["weight_shape"] = [15, 0, 9, 9]
    doc["nodes"][1]["act_type"] = "relux"
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    wired = json.loads(saved[0].read_text())
    wired["connections"]["data"] = ["conv.inptu"]  # schema-valid, wrong wiring
    (tmp_path / "wired.json").write_text(json.dumps(wired))
    assert cli.main(["validate", str(saved[0])]) == 0
    assert capsys.readouterr().out == f"{saved[0]}: valid\n"
    assert cli.main(["validate", str(tmp_path / "broken.json"), str(tmp_path / "wired.json")]
                    ) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[1] for line in lines[:2]] == ["nodes[0].weight_shape[1]",
                                                          "nodes[1].act_type"]
    assert len(lines) == 3 and lines[2].startswith(f"{tmp_path / 'wired.json'}: ")
    assert "conv.inptu" in lines[2]


def legacy_definition(tmp_path):
    """A definition as the 2015 library wrote it (no format_version, no 'form' field), with a
    WeightDecayPenalty, whose 2015 meaning (mean row norm) differs from today's default."""
    data, lr = optimus.Input("data", (None, 4)), optimus.Input("learning_rate", None)
    dense = optimus.Affine("dense", data.shape, (None, 3), act_type="linear")
    decay = optimus.WeightDecayPenalty("decay", weight=0.5)
    penalty, scores = optimus.Output("penalty"), optimus.Output("scores")
    graph = optimus.Graph("legacy", [data, lr], [dense, decay], optimus.ConnectionManager(
        [(data, dense.input), (dense.output, scores), (dense.weights, decay.input),
         (decay.output, penalty)]).connections, [penalty, scores],
        penalty, {"learning_rate": ["dense.weights"]})
    optimus.random_init(dense.weights, seed=3)
    optimus.save(graph, tmp_path / "old.json", tmp_path / "params.npz")
    doc = json.loads((tmp_path / "old.json").read_text())
    del doc["format_version"], doc["optimus_version"]
    for node in doc["nodes"]:
        node.pop("form", None)
    (tmp_path / "old.json").write_text(json.dumps(doc))
    return tmp_path / "old.json", tmp_path / "params.npz"


def test_upgrade_writes_the_current_format_with_the_same_meaning(tmp_path, capsys):
    old, params = legacy_definition(tmp_path)
    new = tmp_path / "new.json"
    assert cli.main(["upgrade", str(old), str(new)]) == 0
    assert "format_version 1" in capsys.readouterr().out
    doc = json.loads(new.read_text())
    assert doc["format_version"] == 1
    assert [n.get("form") for n in doc["nodes"] if n["type"] == "WeightDecayPenalty"] == [
        "mean_row_norm"]
    x = {"data": np.zeros((2, 4)), "learning_rate": 0.0}
    before = optimus.load(old, params)(**x)["penalty"]
    after = optimus.load(new, params)(**x)["penalty"]
    weights = np.load(params)["dense.weights"]
    assert after == before == pytest.approx(0.5 * np.linalg.norm(weights, axis=1).mean())
    assert cli.main(["validate", str(new)]) == 0


def test_upgrade_refuses_a_newer_format(saved, tmp_path, capsys):
    doc = json.loads(saved[0].read_text())
    doc["format_version"] = 99
    (tmp_path / "future.json").write_text(json.dumps(doc))
    assert cli.main(["upgrade", str(tmp_path / "future.json"), str(tmp_path / "x.json")]) == 2
    assert "format_version: 99 is newer than this optimus" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_draw_writes_dot_and_svg(saved, tmp_path):
    assert cli.main(["draw", str(saved[0]), "-o", str(tmp_path / "g.dot")]) == 0
    assert (tmp_path / "g.dot").read_text().startswith("digraph mnist_trainer {")
    assert cli.main(["draw", str(saved[0]), "-o", str(tmp_path / "g.svg")]) == 0
    assert b"<svg" in (tmp_path / "g.svg").read_bytes()[:1000]


# -- user errors: one line, exit status 2, --debug for the traceback -----------------------------
def user_error(argv, capsys) -> str:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"optimus {argv[0]}: error: ")
    return lines[0]


def test_a_missing_file(tmp_path, capsys):
    line = user_error(["info", str(tmp_path / "nope.json")], capsys)
    assert line.endswith("nope.json: no such file; check the path")


def test_bad_json(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"name": ')
    line = user_error(["info", str(tmp_path / "bad.json")], capsys)
    assert "bad.json: not valid JSON" in line and "line 1" in line
    assert line.endswith("pass a graph definition written by optimus.save")


def test_a_parameter_file_passed_as_the_definition(saved, capsys):
    line = user_error(["info", str(saved[1]), str(saved[0])], capsys)
    assert "params.npz: is a parameter file (.npz), not a definition; pass the .json" in line
    line = user_error(["eval", str(saved[0]), str(saved[0])], capsys)
    assert "def.json: is not a parameter file" in line


def test_unset_optimus_data(saved, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPTIMUS_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    line = user_error(["eval", str(saved[0]), str(saved[1])], capsys)
    assert "OPTIMUS_DATA is not set" in line and "set OPTIMUS_DATA to the folder" in line
    assert not (tmp_path / "cache").exists()  # nothing downloaded, no empty cache folder


def test_a_missing_optional_package_names_the_extra(saved, monkeypatch, capsys):
    from optimus import schema
    schema._validator.cache_clear()
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # import jsonschema fails
    try:
        line = user_error(["validate", str(saved[0])], capsys)
    finally:
        schema._validator.cache_clear()
    assert line.endswith('install it with: python -m pip install "optimus-nn[schema]"')


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(optimus.OptimusError, match="no such file"):
        cli.main(["--debug", "info", str(tmp_path / "nope.json")])
    with pytest.raises(optimus.OptimusError, match="no such file"):
        cli.main(["info", str(tmp_path / "nope.json"), "--debug"])
