import numpy as np
import pytest
import torch

import optimus
from optimus.examples import seed004_flux_conv
from tests.examples.results import parse_result


def test_quick_run_saves_the_best_and_reloads_it(capsys, tmp_path):
    seed004_flux_conv.main(["--quick", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    result = parse_result(out)
    assert float(result["test_accuracy"]) > 0.3  # 20 steps; chance is 0.1
    assert int(result["epochs"]) == 2
    predictor = optimus.load(tmp_path / "flux_best.json", tmp_path / "flux_best.npz")
    assert predictor.name == "flux_predictor" and list(predictor.inputs) == ["images"]
    assert predictor.params["conv0.weights"].shape == (16, 1, 3, 3)
    assert predictor.params["dense.weights"].shape == (288, 10)
    assert np.abs(predictor.params["dense.weights"].value).sum() > 0


def test_quick_run_in_bfloat16(capsys, tmp_path):
    seed004_flux_conv.main(["--quick", "--precision", "bf16", "--output-dir", str(tmp_path)])
    result = parse_result(capsys.readouterr().out)
    assert result["precision"] == "bf16"
    assert float(result["test_accuracy"]) > 0.3


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        seed004_flux_conv.main(["--quick", "--device", "cuda"])
    assert exit_.value.code == 2
    assert "--device cuda: this machine has no CUDA device" in capsys.readouterr().err
