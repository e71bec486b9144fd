import numpy as np

from optimus.datasets import sentiment
from optimus.examples import seed001_sentiment_mlp as seed001
from tests.examples.results import parse_result


def test_quick_run_gives_the_same_accuracy_three_ways(capsys):
    seed001.main(["--quick"])
    result = parse_result(capsys.readouterr().out)
    # The quick run's numbers (800 reviews, 2 epochs; the example's docstring): all three ways
    # start from the same weights and take the same steps in order, so they agree to rounding.
    for name in ("numpy", "optimus_reference", "optimus_fast"):
        assert abs(float(result[f"{name}_train"]) - 0.8738) <= 0.005, name
        assert abs(float(result[f"{name}_test"]) - 0.725) <= 0.005, name
    assert result["optimus_fast_test"] == result["numpy_test"]
    assert result["optimus_reference_test"] == result["numpy_test"]
    assert result["optimus_fast_train"] == result["numpy_train"]


def test_full_run_on_the_fast_path_lands_on_the_reference_numbers():
    """All 1,600 training reviews, 5 epochs: the plain NumPy reference (and the tutorial)
    reach train 0.9644 (0.964375) and test 0.785 (REFERENCE_NUMBERS.md, seed 001)."""
    (train_x, train_y), (test_x, test_y) = sentiment.load("books")
    graph = seed001.build_graph(seed001.lxmls_init(), "fast")
    seed001.train_optimus(graph, train_x, train_y, seed001.EPOCHS)
    assert abs(seed001.optimus_accuracy(graph, train_x, train_y) - 0.9644) <= 0.003
    assert abs(seed001.optimus_accuracy(graph, test_x, test_y) - 0.785) <= 0.005


def test_numpy_backprop_matches_optimus_gradients():
    """The example's hand-written gradients equal autograd's on the optimus graph."""
    rng = np.random.RandomState(0)
    geometry = (30, 4, 2)
    params = seed001.lxmls_init(geometry, seed=3)
    params[1][:] = rng.randn(4, 1)
    params[3][:] = rng.randn(2, 1)
    x, y = rng.poisson(0.5, size=(5, 30)).astype(np.float64), np.array([0, 1, 1, 0, 1])
    grads = seed001.NumpyMLP(params).grads(x.T, y)

    import optimus
    data = optimus.Input("data", (None, 30))
    labels = optimus.Input("labels", (None,), "int64")
    lr = optimus.Input("learning_rate", None)
    hidden = optimus.Affine("hidden", data.shape, (None, 4), act_type="sigmoid")
    output = optimus.Affine("output", hidden.output.shape, (None, 2), act_type="linear")
    sm, nll = optimus.Softmax("softmax"), optimus.NegativeLogLikelihoodLoss("nll")
    loss = optimus.Output("loss")
    graph = optimus.Graph("g", [data, labels, lr], [hidden, output, sm, nll],
                          optimus.ConnectionManager([
                              (data, hidden.input), (hidden.output, output.input),
                              (output.output, sm.input), (sm.output, nll.likelihoods),
                              (labels, nll.index), (nll.output, loss)]).connections,
                          [loss], loss, {"learning_rate": ["hidden.weights", "hidden.bias",
                                                           "output.weights", "output.bias"]},
                          engine="reference")
    W1, b1, W2, b2 = params
    graph.param_values = {"hidden.weights": W1.T, "hidden.bias": b1[:, 0],
                          "output.weights": W2.T, "output.bias": b2[:, 0]}
    graph(data=x, labels=y, learning_rate=1.0)  # one SGD step of size 1: old - new = grad
    new = graph.param_values
    np.testing.assert_allclose(W1.T - new["hidden.weights"], grads[0].T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b1[:, 0] - new["hidden.bias"], grads[1][:, 0], rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(W2.T - new["output.weights"], grads[2].T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(b2[:, 0] - new["output.bias"], grads[3][:, 0], rtol=1e-4,
                               atol=1e-6)
