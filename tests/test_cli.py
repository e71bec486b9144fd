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
