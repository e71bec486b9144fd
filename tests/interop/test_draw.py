"""Drawing: the DOT text (no program needed) read back by Graphviz itself (``dot -Tjson``) has
every node with its type, output shape and parameter count, port-labelled edges, the
learning-rate Input and the parameters it drives drawn distinctly, and the loss marked; the SVG
renders; a missing ``dot`` program gives the install command."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

import optimus
from optimus.drawing import LOSS_COLOR, LR_COLOR, draw, to_dot
from optimus.extras import MissingDependencyError


@pytest.fixture(scope="module")
def seed000():
    from optimus.examples import seed000_mnist_convnet
    return seed000_mnist_convnet.build_trainer()


def parsed(graph) -> tuple[dict, list]:
    """Graphviz's own reading of our DOT text: ``{name: attributes}``, and edges as
    ``(tail, head, attributes)``."""
    if shutil.which("dot") is None:
        pytest.fail("Graphviz's dot program is missing: apt-get install graphviz (.ci/run "
                    "installs it)")
    doc = json.loads(to_dot(graph).pipe(format="json0"))
    nodes = {o["name"]: o for o in doc["objects"]}
    names = [o["name"] for o in doc["objects"]]
    edges = [(names[e["tail"]], names[e["head"]], e) for e in doc.get("edges", [])]
    return nodes, edges


def test_dot_text_needs_no_program(seed000, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on PATH
    path = draw(seed000, tmp_path / "g.dot")
    text = path.read_text()
    assert text.startswith("digraph mnist_trainer {") and text.rstrip().endswith("}")
    assert "conv -> affine" in text


def test_nodes_show_type_output_shape_and_parameter_count(seed000):
    nodes, _ = parsed(seed000)
    assert set(nodes) == {"data", "labels", "learning_rate", "conv", "affine", "classifier",
                          "softmax", "nll", "loss", "likelihoods"}
    assert nodes["conv"]["label"] == "conv\nConv3D\nout: (N, 15, 10, 10)\nparams: 1,230"
    assert nodes["affine"]["label"] == "affine\nAffine\nout: (N, 512)\nparams: 768,512"
    assert nodes["softmax"]["label"] == "softmax\nSoftmax\nout: (N, 10)"
    assert nodes["data"]["label"] == "data\nInput (N, 1, 28, 28) float32"
    assert all(nodes[n]["shape"] == "box" for n in ("conv", "affine", "nll"))


def test_edges_are_labelled_with_ports(seed000):
    _, edges = parsed(seed000)
    labels = {(t, h): e.get("label") for t, h, e in edges if e.get("style") != "dashed"}
    assert labels == {("data", "conv"): "input", ("conv", "affine"): "output → input",
                      ("affine", "classifier"): "output → input",
                      ("classifier", "softmax"): "output → input",
                      ("softmax", "nll"): "output → likelihoods", ("labels", "nll"): "index",
                      ("softmax", "likelihoods"): "output", ("nll", "loss"): "output"}


def test_learning_rate_and_the_parameters_it_drives_are_distinct(seed000):
    nodes, edges = parsed(seed000)
    assert nodes["learning_rate"]["shape"] == "diamond"
    assert nodes["learning_rate"]["color"] == LR_COLOR
    driven = {h: e["label"] for t, h, e in edges if t == "learning_rate"}
    assert driven == {"conv": "weights, bias", "affine": "weights, bias",
                      "classifier": "weights, bias"}
    assert all(e["style"] == "dashed" and e["color"] == LR_COLOR
               for t, _, e in edges if t == "learning_rate")


def test_the_loss_is_marked(seed000):
    nodes, edges = parsed(seed000)
    assert nodes["loss"]["color"] == LOSS_COLOR and "the loss" in nodes["loss"]["label"]
    assert nodes["likelihoods"].get("color", "black") != LOSS_COLOR
    assert [e["color"] for t, h, e in edges if h == "loss"] == [LOSS_COLOR]


def test_a_parameter_used_as_a_source_is_drawn_from_its_node():
    from optimus.examples import seed002_blocks_mlp
    nodes, edges = parsed(seed002_blocks_mlp.build()[0])
    assert ("input_to_hidden", "decay_1", "weights → input") in {
        (t, h, e.get("label")) for t, h, e in edges}


def test_svg_renders(seed000, tmp_path):
    path = draw(seed000, tmp_path / "g.svg")
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    titles = {el.text for el in root.iter() if el.tag.endswith("title")}
    assert {"conv", "affine", "loss", "learning_rate", "conv->affine"} <= titles


def test_a_missing_dot_program_names_the_install_command(seed000, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="apt-get install graphviz"):
        draw(seed000, tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()


def test_an_unknown_format_is_refused(seed000, tmp_path):
    with pytest.raises(optimus.OptimusError, match="format 'bmpx'"):
        draw(seed000, tmp_path / "g.bmpx")
