from optimus.examples import seed002_blocks_mlp
from tests.examples.results import parse_result


def test_quick_run_monitors_the_test_stream_and_finishes_after_one_epoch(capsys):
    returned = seed002_blocks_mlp.main(["--quick"])
    out = capsys.readouterr().out
    result = parse_result(out)
    assert set(result) >= {"test_cost", "test_error", "iterations", "epochs", "seconds"}
    assert int(result["epochs"]) == 1 and int(result["iterations"]) == 10  # 2560 / 256
    assert 0.0 < float(result["test_error"]) < 0.9  # 10 steps: better than chance
    cost, xent = float(result["test_cost"]), float(result["test_cross_entropy"])
    assert 0.0 < xent < cost < 2.5  # the regularization adds to the cross-entropy
    assert returned["test_cost"] == cost
    assert "Monitor test after 1 epochs, 10 steps: test_cost=" in out
    assert "Before training: test_cost=" in out
