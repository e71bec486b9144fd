from optimus.examples import seed003_mxnet_cnn
from tests.examples.results import parse_result


def test_quick_run_learns_and_prints_the_tutorial_line(capsys):
    seed003_mxnet_cnn.main(["--quick"])
    out = capsys.readouterr().out
    result = parse_result(out)
    # 150 steps from a Glorot start: 0.88-0.92 on test over seeds 0-2; chance is 0.1
    assert float(result["train_accuracy"]) > 0.7
    assert float(result["test_accuracy"]) > 0.7
    assert 0 < float(result["loss"]) < 1.5  # the plateau is 2.30
    assert "Epoch 0. Loss: " in out and ", Train_acc " in out and ", Test_acc " in out
