"""Small, seeded training setups shared by the training tests."""
import numpy as np

import optimus
from optimus.data import DataStream, SequentialScheme, ShuffledScheme

RNG = np.random.RandomState(0)
X = RNG.randn(40, 6).astype("float32")
Y = (X[:, 0] > 0).astype("int32") + (X[:, 1] > 0).astype("int32")  # 3 classes, learnable


def classifier(step_rule=None, name="clf", noise=False):
    """A seeded 6-5-3 MLP trainer and a predictor sharing its nodes.

    Returns ``(trainer, predictor)``; the trainer's outputs are loss and likelihoods, the
    predictor's are loss and likelihoods too (without updates).
    """
    data = optimus.Input("data", (None, 6))
    labels = optimus.Input("labels", (None,), "int32")
    lr = optimus.Input("learning_rate", None)
    nodes = []
    first = data
    if noise:
        nodes.append(optimus.GaussianNoise("noise", std=0.3))
    hidden = optimus.Affine("hidden", data.shape, (None, 5), "relu")
    out = optimus.Affine("out", hidden.output.shape, (None, 3), "softmax")
    nll = optimus.NegativeLogLikelihoodLoss("nll")
    nodes += [hidden, out, nll]
    loss, probs = optimus.Output("loss"), optimus.Output("likelihoods")
    pairs = [(hidden.output, out.input), (out.output, nll.likelihoods),
             (labels, nll.index), (out.output, probs), (nll.output, loss)]
    if noise:
        pairs += [(first, nodes[0].input), (nodes[0].output, hidden.input)]
    else:
        pairs += [(first, hidden.input)]
    edges = optimus.ConnectionManager(pairs).connections
    updates = optimus.ConnectionManager(
        [(lr, p) for node in (hidden, out) for p in (node.weights, node.bias)]).connections
    trainer = optimus.Graph(name, [data, labels, lr], nodes, edges, [loss, probs], loss,
                            updates, step_rule=step_rule)
    predictor = optimus.Graph(name + "_predictor", [data, labels], nodes, edges,
                              [loss, probs])
    for i, node in enumerate((hidden, out)):
        optimus.random_init(node.weights, 0.0, 0.5, seed=i)
    return trainer, predictor


def stream(shuffle=False, batch_size=8, seed=0):
    scheme = (ShuffledScheme(len(X), batch_size, seed=seed) if shuffle
              else SequentialScheme(len(X), batch_size))
    return DataStream({"data": X, "labels": Y}, scheme)


def same_params(a, b):
    return all(np.array_equal(a.params[k].value, b.params[k].value) for k in a.params)
