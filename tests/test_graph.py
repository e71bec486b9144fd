import warnings

import numpy as np
import pytest

import optimus
from optimus.errors import GraphError, InputError, ParameterError
from tests.conftest import build_classifier


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_linear_classifier(n_in=4, n_classes=3):
    x = optimus.Input("x", (None, n_in))
    y = optimus.Input("y", (None,), "int64")
    lr = optimus.Input("lr", None)
    affine = optimus.Affine("affine", x.shape, (None, n_classes), "linear")
    sm, nll = optimus.Softmax("sm"), optimus.NegativeLogLikelihoodLoss("nll")
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([(x, affine.input), (affine.output, sm.input),
                                       (sm.output, nll.likelihoods), (y, nll.index),
                                       (nll.output, loss)])
    graph = optimus.Graph("linear", [x, y, lr], [affine, sm, nll], edges.connections,
                          [loss], loss, {"lr": ["affine.weights", "affine.bias"]})
    return graph, affine


def test_call_returns_ordered_numpy_outputs(classifier, batch):
    out = classifier(**batch, learning_rate=0.0)
    assert list(out) == ["loss", "likelihoods"]
    assert out["loss"].shape == () and out["likelihoods"].shape == (8, 3)
    np.testing.assert_allclose(out["likelihoods"].sum(axis=1), 1.0, rtol=1e-5)
    probs = out["likelihoods"][np.arange(8), batch["labels"]]
    np.testing.assert_allclose(out["loss"], -np.log(probs).mean(), rtol=1e-5)


def test_sgd_step_matches_hand_computation():
    graph, affine = make_linear_classifier()
    rng = np.random.RandomState(1)
    w, b = rng.randn(4, 3), rng.randn(3)
    affine.weights.value, affine.bias.value = w, b
    x, y = rng.randn(5, 4), np.array([0, 2, 1, 1, 0])
    out = graph(x=x, y=y, lr=0.3)
    p = softmax(x @ w + b)
    np.testing.assert_allclose(out["loss"], -np.log(p[np.arange(5), y]).mean(), rtol=1e-5)
    dz = (p - np.eye(3)[y]) / 5
    np.testing.assert_allclose(affine.weights.value, w - 0.3 * x.T @ dz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(affine.bias.value, b - 0.3 * dz.sum(0), rtol=1e-5, atol=1e-6)


def test_learning_rate_zero_evaluates(classifier, batch):
    before = classifier.param_values
    first = classifier(**batch, learning_rate=0.0)
    second = classifier(**batch, learning_rate=0.0)
    for key, value in classifier.param_values.items():
        np.testing.assert_array_equal(value, before[key])
    np.testing.assert_array_equal(first["loss"], second["loss"])


def test_training_lowers_the_loss(classifier, batch):
    losses = [float(classifier(**batch, learning_rate=0.2)["loss"]) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]


def test_unwired_parameters_do_not_move():
    graph_nodes = build_classifier()[1]
    for node in graph_nodes[:2]:
        optimus.random_init(node.weights, 0, 0.5, seed=0)
    data = optimus.Input("data", (None, 6))
    labels = optimus.Input("labels", (None,), "int32")
    lr = optimus.Input("learning_rate", None)
    hidden, out, sm, nll = graph_nodes
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([(data, hidden.input), (hidden.output, out.input),
                                       (out.output, sm.input), (sm.output, nll.likelihoods),
                                       (labels, nll.index), (nll.output, loss)])
    graph = optimus.Graph("finetune", [data, labels, lr], list(graph_nodes), edges.connections,
                          [loss], loss, {"learning_rate": ["out.weights", "out.bias"]})
    frozen = hidden.weights.value
    moving = out.weights.value
    rng = np.random.RandomState(0)
    graph(data=rng.randn(8, 6), labels=rng.randint(0, 3, 8), learning_rate=0.5)
    np.testing.assert_array_equal(hidden.weights.value, frozen)
    assert not np.allclose(out.weights.value, moving)


def test_graphs_built_from_the_same_nodes_share_parameters(classifier, batch):
    hidden, out, sm = (classifier.nodes[n] for n in ("hidden", "out", "softmax"))
    data = optimus.Input("data", (None, 6))
    probs = optimus.Output("probs")
    predictor = optimus.Graph("predictor", [data], [hidden, out, sm], optimus.ConnectionManager(
        [(data, hidden.input), (hidden.output, out.input), (out.output, sm.input),
         (sm.output, probs)]).connections, [probs])
    before = predictor(data=batch["data"])["probs"]
    classifier(**batch, learning_rate=0.5)
    after = predictor(data=batch["data"])["probs"]
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, classifier(**batch, learning_rate=0.0)["likelihoods"],
                               rtol=1e-6)


def test_param_values_roundtrip_and_unknown_keys(classifier):
    values = classifier.param_values
    assert list(values) == ["hidden.weights", "hidden.bias", "out.weights", "out.bias"]
    values["out.bias"] = np.array([1.0, 2.0, 3.0])
    with pytest.warns(UserWarning, match="'clf'.*'conv.another_param'") as record:
        classifier.param_values = {**values, "conv.another_param": np.ones((3, 4))}
    assert len(record) == 1
    np.testing.assert_array_equal(classifier.param_values["out.bias"], [1, 2, 3])
    with pytest.raises(ParameterError, match=r"'out.bias'.*\(3,\).*\(4,\)"):
        classifier.param_values = {"out.bias": np.zeros(4)}


def test_call_errors_name_graph_and_inputs(classifier, batch):
    with pytest.raises(InputError, match="'clf'.*missing inputs 'learning_rate'"):
        classifier(**batch)
    with pytest.raises(InputError, match="'clf'.*unknown inputs 'lables'"):
        classifier(**batch, learning_rate=0.1, lables=batch["labels"])
    with pytest.raises(InputError, match=r"'clf'.*'data' expects shape \(None, 6\), got \(8, 5\)"):
        classifier(data=np.zeros((8, 5)), labels=batch["labels"], learning_rate=0.1)
    with pytest.raises(InputError, match="'learning_rate' is a scalar"):
        classifier(**batch, learning_rate=np.ones(2))


# -- wiring errors ------------------------------------------------------------------------------
def chain(**overrides):
    """Pieces of a small graph; tests break one of them."""
    x = optimus.Input("x", (None, 4))
    a = optimus.Affine("a", (None, 4), (None, 3))
    b = optimus.Affine("b", (None, 3), (None, 2))
    out = optimus.Output("out")
    parts = dict(name="chain", inputs=[x], nodes=[a, b], outputs=[out],
                 connections={"x": ["a.input"], "a.output": ["b.input"], "b.output": ["out"]})
    parts.update(overrides)
    return parts


def test_valid_chain_builds():
    graph = optimus.Graph(**chain())
    assert [n.name for n in graph.order] == ["a", "b"]
    assert graph.shapes["b.output"] == (None, 2)


@pytest.mark.parametrize("connections, pattern", [
    ({"x": ["a.input"], "b.output": ["out"]},
     r"Graph 'chain': port 'b.input' has no source; connect it or remove node 'b'"),
    ({"x": ["a.input", "b.input"], "a.output": ["b.input"], "b.output": ["out"]},
     r"Graph 'chain': port 'b.input' has two sources, 'x' and 'a.output'"),
    ({"x": ["a.input"], "a.outptu": ["b.input"], "b.output": ["out"]},
     r"Graph 'chain': connection source 'a.outptu'.*Did you mean 'a.output'"),
    ({"x": ["a.input"], "a.output": ["b.inptu"], "b.output": ["out"]},
     r"Graph 'chain': connection sink 'b.inptu'.*Did you mean 'b.input'"),
    ({"x": ["a.input"], "a.output": ["b.input"]},
     r"Graph 'chain': Output 'out' has no source"),
    ({"x": ["b.input"], "a.output": ["out"], "b.output": ["a.input"]},
     r"Graph 'chain': port 'b.input' expects shape \(None, 3\) but its source 'x' has shape "
     r"\(None, 4\)"),
    ({"a.input": ["b.input"], "x": ["a.input"], "b.output": ["out"]},
     r"'a.input' is used as a source"),
])
def test_wiring_errors_name_graph_node_and_port(connections, pattern):
    with pytest.raises(GraphError, match=pattern):
        optimus.Graph(**chain(connections=connections))


def test_cycle_is_reported_with_its_nodes():
    a = optimus.Affine("a", (None, 3), (None, 3))
    b = optimus.Affine("b", (None, 3), (None, 3))
    c = optimus.Affine("c", (None, 4), (None, 2))
    with pytest.raises(GraphError, match=r"'chain': the connections form a cycle through nodes "
                                         r"'a', 'b'"):
        optimus.Graph(**chain(nodes=[c, a, b], connections={
            "x": ["c.input"], "c.output": ["out"], "a.output": ["b.input"],
            "b.output": ["a.input"]}))


def test_duplicate_and_unused_names():
    x = optimus.Input("x", (None, 4))
    with pytest.raises(GraphError, match="two inputs are named 'x'"):
        optimus.Graph(**chain(inputs=[x, optimus.Input("x", (None, 4))]))
    with pytest.raises(GraphError, match="name 'a' is used by an input and a node"):
        optimus.Graph(**chain(inputs=[x, optimus.Input("a", (None, 4))]))
    with pytest.raises(GraphError, match="Input 'extra' is not connected"):
        optimus.Graph(**chain(inputs=[x, optimus.Input("extra", (None, 4))]))


def test_loss_and_update_errors():
    lr = optimus.Input("lr", None)
    with pytest.raises(GraphError, match="loss 'out' must be a scalar"):
        optimus.Graph(**chain(inputs=[optimus.Input("x", (None, 4)), lr], loss="out",
                              updates={"lr": ["a.weights"]}))
    graph, affine = make_linear_classifier()
    parts = dict(name="g", inputs=list(graph.inputs.values()), nodes=list(graph.nodes.values()),
                 connections=graph.connections, outputs=list(graph.outputs.values()), loss="loss")
    with pytest.raises(GraphError, match=r"'g': update target 'affine.weight' \(from 'lr'\).*"
                                         r"Did you mean 'affine.weights'"):
        optimus.Graph(**parts, updates={"lr": ["affine.weight"]})
    with pytest.raises(GraphError, match="'g': update source 'rate' is not an Input"):
        optimus.Graph(**parts, updates={"rate": ["affine.weights"]})
    with pytest.raises(GraphError, match="'g': learning-rate Input 'x' must be a scalar"):
        optimus.Graph(**parts, updates={"x": ["affine.weights"]})
    with pytest.raises(GraphError, match="'g': loss 'nope' is not one of the outputs"):
        optimus.Graph(**{**parts, "loss": "nope"}, updates={"lr": ["affine.weights"]})


def test_shape_errors_at_construction_name_node_and_field():
    with pytest.raises(optimus.ConfigError, match="Conv3D 'conv'.*weight_shape.*3 input maps"):
        optimus.Conv3D("conv", (None, 1, 28, 28), (15, 3, 9, 9))
    with pytest.raises(optimus.ConfigError, match="Conv3D 'conv'.*border_mode 'wide'"):
        optimus.Conv3D("conv", (None, 1, 28, 28), (15, 1, 9, 9), border_mode="wide")
    with pytest.raises(optimus.ConfigError, match="Affine 'fc'.*act_type 'rleu'"):
        optimus.Affine("fc", (None, 3), (None, 2), act_type="rleu")
    with pytest.raises(optimus.ConfigError, match="Conv3D 'conv'.*cannot take inputs"):
        optimus.Conv3D("conv", (None, 1, 5, 5), (15, 1, 9, 9))


def test_parameters_can_feed_outputs_without_aliasing(classifier):
    data = optimus.Input("data", (None, 6))
    hidden = classifier.nodes["hidden"]
    w, h = optimus.Output("w"), optimus.Output("h")
    graph = optimus.Graph("peek", [data], [hidden], {"data": ["hidden.input"],
                          "hidden.weights": ["w"], "hidden.output": ["h"]}, [w, h])
    out = graph(data=np.zeros((2, 6)))
    out["w"][:] = 0
    assert np.abs(hidden.weights.value).sum() > 0


def test_readonly_inputs_are_accepted_without_warnings(classifier, batch):
    data = batch["data"].copy()
    data.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classifier(data=data, labels=batch["labels"], learning_rate=0.1)
