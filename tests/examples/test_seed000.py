import os
import subprocess
import sys

from optimus.examples import seed000_mnist_convnet
from tests.examples.results import parse_result


def test_quick_run_learns_and_restores(capsys, tmp_path):
    returned = seed000_mnist_convnet.main(["--quick", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    result = parse_result(out)
    assert float(result["valid_error"]) < 0.8  # 21 steps: well above chance (0.9)
    assert 0.85 < float(result["blank_error"]) < 0.95  # zero parameters: one constant class
    assert result["restored_error"] == result["valid_error"]
    assert result["identical"] == "True"
    assert returned["steps"] == 21
    assert "] 10 / 20: " in out  # the notebook's progress line, every 5 steps
    assert "One step on 3 images: loss " in out  # a summary, not the notebook's raw dump
    assert "OrderedDict" not in out and "array(" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist_params.npz",
                                                          "mnist_trainer.json"]


def test_demo_runs_from_the_installed_package(tmp_path):
    env = {**os.environ, "OPTIMUS_DATA": os.path.abspath(os.environ["OPTIMUS_DATA"])}
    proc = subprocess.run([sys.executable, "-m", "optimus.cli", "demo", "mnist", "--quick",
                           "--output-dir", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert float(parse_result(proc.stdout)["valid_error"]) < 0.8
    assert "] 20 / 20: " in proc.stdout  # on the console by default, as in the notebook
