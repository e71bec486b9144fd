"""Seed 000: "Building an MNIST ConvNet in Optimus", ported to Python 3.

Declare inputs, nodes, a loss and outputs; wire them; train 500 SGD steps of 25 random images at
learning rate 0.02; score the validation set; save the graph as JSON + npz; reload the
definition alone (a blank network, ~90 % error) and restore the parameters (the same numbers).

    python examples/seed000_mnist_convnet.py [--quick] [--output-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import optimus
from optimus.datasets import mnist


def say(*lines: str) -> None:
    """Print on rank 0 alone: under torchrun every process runs this script."""
    if optimus.distributed.is_main():
        print(*lines)


def build_trainer(engine: str = "auto") -> optimus.Graph:
    """The notebook's graph: conv 15@9x9 + max-pool 2 + relu, affine 512 relu, affine 10,
    softmax and negative log-likelihood, with one learning rate for every parameter."""
    data = optimus.Input(name="data", shape=(None, 1, 28, 28))
    class_labels = optimus.Input(name="labels", shape=(None,), dtype="int32")
    learning_rate = optimus.Input(name="learning_rate", shape=None)

    conv = optimus.Conv3D(name="conv", input_shape=data.shape, weight_shape=(15, 1, 9, 9),
                          pool_shape=(2, 2), act_type="relu")
    affine = optimus.Affine(name="affine", input_shape=conv.output.shape,
                            output_shape=(None, 512), act_type="relu")
    classifier = optimus.Affine(name="classifier", input_shape=affine.output.shape,
                                output_shape=(None, 10), act_type="linear")
    softmax = optimus.Softmax(name="softmax")
    nll = optimus.NegativeLogLikelihoodLoss(name="nll")
    likelihoods = optimus.Output(name="likelihoods")
    loss = optimus.Output(name="loss")

    trainer_edges = optimus.ConnectionManager([
        (data, conv.input),
        (conv.output, affine.input),
        (affine.output, classifier.input),
        (classifier.output, softmax.input),
        (softmax.output, nll.likelihoods),
        (class_labels, nll.index),
        (softmax.output, likelihoods),
        (nll.output, loss)])
    update_edges = optimus.ConnectionManager([
        (learning_rate, conv.weights), (learning_rate, conv.bias),
        (learning_rate, affine.weights), (learning_rate, affine.bias),
        (learning_rate, classifier.weights), (learning_rate, classifier.bias)])

    trainer = optimus.Graph(name="mnist_trainer", inputs=[data, class_labels, learning_rate],
                            nodes=[conv, affine, classifier, softmax, nll],
                            connections=trainer_edges.connections, outputs=[loss, likelihoods],
                            loss=loss, updates=update_edges.connections, engine=engine)
    for node in conv, affine, classifier:
        optimus.random_init(node.weights, mean=0.0, std=0.1)
    return trainer


def score(graph: optimus.Graph, data: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Classification error and loss of ``graph`` on a labelled set (no update: rate 0)."""
    outputs = graph(data=data, labels=labels, learning_rate=0.0)
    labels_pred = outputs["likelihoods"].argmax(axis=1)
    return 1.0 - np.equal(labels, labels_pred).mean(), float(outputs["loss"])


def report(error: float, loss: float) -> None:
    say("Classification Error: {0:0.4}".format(error))
    say("                Loss: {0:0.4}".format(loss))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--max-iter", type=int, default=500)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--output-dir", default=None, help="where to save the graph")
    args = parser.parse_args(argv)
    max_iter = 20 if args.quick else args.max_iter
    np.random.seed(args.seed)
    optimus.tune_memory()  # keep freed activation memory between steps (glibc; see README)

    train, valid, test = mnist.load()
    if args.quick:
        valid = (valid[0][:1000], valid[1][:1000])
    trainer = build_trainer()

    X, y = [part[:3] for part in train]
    outputs = trainer(data=X, labels=y, learning_rate=0.02)  # one step on 3 images
    say(f"One step on 3 images: loss {float(outputs['loss']):.4f}, likelihoods of shape "
        f"{outputs['likelihoods'].shape}, predicted {outputs['likelihoods'].argmax(axis=1)}, "
        f"true {y}")

    start = time.perf_counter()
    driver = optimus.Driver(graph=trainer)
    driver.fit(source=optimus.minibatch(train[0], train[1], batch_size=25),
               hyperparams={"learning_rate": 0.02}, max_iter=max_iter,
               print_freq=5 if args.quick else 25)
    seconds = time.perf_counter() - start

    error, loss = score(trainer, *valid)
    report(error, loss)

    out_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="optimus-seed000-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    def_file, param_file = out_dir / "mnist_trainer.json", out_dir / "mnist_params.npz"
    optimus.save(trainer, def_file, param_file)
    nodes = json.loads(def_file.read_text())["nodes"]
    say(f"Saved {def_file.name}: nodes " + ", ".join(f"{n['name']} ({n['type']})"
                                                        for n in nodes))
    param_values = np.load(param_file)
    say(f"Saved {param_file.name}: " + ", ".join(f"{k} {param_values[k].shape}"
                                                 for k in param_values.keys()))

    new_trainer = optimus.load(def_file)  # definition only: a blank network
    blank_error, blank_loss = score(new_trainer, *valid)
    report(blank_error, blank_loss)

    new_trainer.param_values = param_values
    restored_error, restored_loss = score(new_trainer, *valid)
    report(restored_error, restored_loss)
    same = bool(np.array_equal(
        trainer(data=valid[0], labels=valid[1], learning_rate=0.0)["likelihoods"],
        new_trainer(data=valid[0], labels=valid[1], learning_rate=0.0)["likelihoods"]))

    result = {"steps": driver.iteration, "valid_error": round(error, 4),
              "valid_loss": round(loss, 4), "blank_error": round(blank_error, 4),
              "restored_error": round(restored_error, 4), "identical": same,
              "train_seconds": round(seconds, 2)}
    say("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
