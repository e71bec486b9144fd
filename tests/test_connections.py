import optimus


def test_connections_match_the_notebook():
    data = optimus.Input("data", (None, 1, 28, 28))
    labels = optimus.Input("labels", (None,), "int32")
    conv = optimus.Conv3D("conv", data.shape, (15, 1, 9, 9), pool_shape=(2, 2))
    affine = optimus.Affine("affine", conv.output.shape, (None, 512))
    classifier = optimus.Affine("classifier", affine.output.shape, (None, 10), "linear")
    softmax, nll = optimus.Softmax("softmax"), optimus.NegativeLogLikelihoodLoss("nll")
    likelihoods, loss = optimus.Output("likelihoods"), optimus.Output("loss")
    edges = optimus.ConnectionManager([
        (data, conv.input), (conv.output, affine.input), (affine.output, classifier.input),
        (classifier.output, softmax.input), (softmax.output, nll.likelihoods),
        (labels, nll.index), (softmax.output, likelihoods), (nll.output, loss)])
    assert edges.connections == {
        "affine.output": ["classifier.input"], "classifier.output": ["softmax.input"],
        "conv.output": ["affine.input"], "data": ["conv.input"], "labels": ["nll.index"],
        "nll.output": ["loss"], "softmax.output": ["nll.likelihoods", "likelihoods"]}


def test_update_edges_and_repeated_edges():
    lr = optimus.Input("learning_rate", None)
    affine = optimus.Affine("affine", (None, 3), (None, 2))
    edges = optimus.ConnectionManager([(lr, affine.weights), (lr, affine.bias),
                                       (lr, affine.weights)])
    assert edges.connections == {"learning_rate": ["affine.weights", "affine.bias"]}


def test_connections_is_a_copy():
    edges = optimus.ConnectionManager([("a", "b.input")])
    edges.connections["a"].append("c.input")
    assert edges.connections == {"a": ["b.input"]}
