"""The interop extras stay optional: ``import optimus`` (and the CLI module) works without
onnx, onnxruntime, onnxscript, jsonschema, graphviz and tensorboard, and each feature then
names the ``pip install`` command that adds its extra."""
from __future__ import annotations

import subprocess
import sys

BLOCK = ("onnx", "onnxruntime", "onnxscript", "jsonschema", "graphviz", "tensorboard")
SCRIPT = f"""
import sys
for name in {BLOCK!r}:
    sys.modules[name] = None  # importing it raises ImportError
import optimus, optimus.cli, optimus.schema, optimus.drawing, optimus.onnx
from optimus.train import TensorBoard
from optimus.extras import MissingDependencyError
g = optimus.Graph("g", [optimus.Input("x", (None, 2))], [], {{"x": ["y"]}},
                  [optimus.Output("y")])
calls = [lambda: optimus.export_onnx(g, "g.onnx"), lambda: optimus.schema.validate({{}}),
         lambda: optimus.draw(g, "g.dot"), lambda: TensorBoard("runs")]
for call, extra in zip(calls, ("onnx", "schema", "draw", "tensorboard")):
    try:
        call()
    except MissingDependencyError as err:
        assert f'python -m pip install "optimus-nn[{{extra}}]"' in str(err), err
    else:
        raise AssertionError(extra)
print("ok")
"""


def test_import_optimus_needs_no_extra(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
