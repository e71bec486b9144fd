import pytest

import optimus
from optimus import cli
from optimus.examples.seed000_mnist_convnet import build_trainer
from tests.examples.results import parse_result


@pytest.fixture
def saved(tmp_path):
    trainer = build_trainer()
    optimus.save(trainer, tmp_path / "def.json", tmp_path / "params.npz")
    return tmp_path / "def.json", tmp_path / "params.npz"


def test_info_lists_nodes_shapes_and_parameter_counts(saved, capsys):
    assert cli.main(["info", str(saved[0]), str(saved[1])]) == 0
    out = capsys.readouterr().out
    assert "Graph 'mnist_trainer'" in out
    assert "conv" in out and "(None, 15, 10, 10)" in out and "params=768,512" in out
    assert "774,872 parameters" in out


def test_eval_scores_a_saved_classifier_on_mnist(saved, capsys):
    assert cli.main(["eval", str(saved[0]), str(saved[1]), "--output", "likelihoods"]) == 0
    result = parse_result(capsys.readouterr().out)
    assert 0.0 <= float(result["accuracy"]) <= 1.0
    assert abs(float(result["accuracy"]) + float(result["error"]) - 1.0) < 1e-3


def test_unknown_demo_is_refused(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "imagenet"])
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
