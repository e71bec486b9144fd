"""Seed 003: "Convolutional neural networks from scratch" (MXNet), in optimus.

conv 20@3x3 + relu + avg-pool 2, conv 50@5x5 + relu + avg-pool 2, dense 800 -> 128 relu,
dense 128 -> 10, softmax cross-entropy; every weight and bias drawn from N(0, 0.01); plain SGD
on shuffled batches of 64 for one epoch; then train and test accuracy in the tutorial's line.

The tutorial steps by 0.01 times the gradient of the *summed* batch loss (MXNet's backward of a
per-example loss vector). optimus' loss nodes average over the batch, so we use the equivalent
learning rate 0.01 x 64 = 0.64 on the mean loss (identical on every full batch; the one short
last batch of 32 steps twice as far per example as the tutorial's would).

    python examples/seed003_mxnet_cnn.py [--quick]

``--quick`` is a smoke test of learning, not of the tutorial's numbers: 150 steps on the first
9,600 images from Glorot-uniform weights (gain sqrt 2, biases 0) at learning rate 0.1. From the
tutorial's N(0, 0.01) the loss sits on its 2.30 plateau for a few hundred steps, and when it
leaves depends on float rounding, so on the machine: too long and too chaotic for a smoke test.
The scaled start learns from the first steps (test accuracy 0.88-0.92 over seeds 0-2).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import optimus
from optimus.data import DataStream, SequentialScheme, ShuffledScheme
from optimus.datasets import mnist
from optimus.train import FinishAfter, Monitor, accuracy

BATCH_SIZE = 64
LEARNING_RATE = 0.01 * BATCH_SIZE  # the tutorial's 0.01 on the summed loss
QUICK_STEPS, QUICK_LEARNING_RATE = 150, 0.1  # --quick (see the module docstring)


def report(*lines: str) -> None:
    """Print on rank 0 alone: under torchrun every process runs this script."""
    if optimus.distributed.is_main():
        print(*lines)


def build(glorot: bool = False) -> tuple[optimus.Graph, optimus.Graph]:
    """The trainer and a predictor graph sharing its nodes; every parameter from N(0, 0.01)
    as in the tutorial, or (``glorot``) weights Glorot-uniform with gain sqrt 2, biases 0."""
    data = optimus.Input("data", (None, 1, 28, 28))
    labels = optimus.Input("labels", (None,), "int64")
    lr = optimus.Input("learning_rate", None)
    conv1 = optimus.Conv2D("conv1", data.shape, num_filters=20, kernel_size=3, act_type="relu")
    pool1 = optimus.AvgPool("pool1", conv1.output.shape, pool_shape=2)
    conv2 = optimus.Conv2D("conv2", pool1.output.shape, num_filters=50, kernel_size=5,
                           act_type="relu")
    pool2 = optimus.AvgPool("pool2", conv2.output.shape, pool_shape=2)
    dense1 = optimus.Affine("dense1", pool2.output.shape, (None, 128), act_type="relu")
    dense2 = optimus.Affine("dense2", dense1.output.shape, (None, 10), act_type="linear")
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    layers = [conv1, pool1, conv2, pool2, dense1, dense2]
    params = [p for node in layers for p in node.params.values()]
    for param in params:
        if not glorot:
            optimus.random_init(param, 0.0, 0.01)
        elif param.name.endswith("weights"):
            optimus.glorot_uniform_init(param, gain=2 ** 0.5)

    chain = [(a.output, b.input) for a, b in zip(layers, layers[1:])]
    loss, scores = optimus.Output("loss"), optimus.Output("scores")
    trainer = optimus.Graph(
        "mxnet_cnn_trainer", [data, labels, lr], [*layers, xent],
        optimus.ConnectionManager([(data, conv1.input), *chain, (dense2.output, xent.logits),
                                   (labels, xent.index), (xent.output, loss),
                                   (dense2.output, scores)]).connections,
        [loss, scores], loss, {"learning_rate": [p.name for p in params]})
    predictor = optimus.Graph(
        "mxnet_cnn_predictor", [data], layers,
        optimus.ConnectionManager([(data, conv1.input), *chain,
                                   (dense2.output, scores)]).connections, [scores])
    return trainer, predictor


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    optimus.tune_memory()  # keep freed activation memory between steps (glibc; see README)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    train, valid, test = mnist.load()
    x_train = np.concatenate([train[0], valid[0]])  # MXNet's MNIST(train=True): 60,000
    y_train = np.concatenate([train[1], valid[1]])
    if args.quick:
        x_train, y_train = x_train[:QUICK_STEPS * BATCH_SIZE], y_train[:QUICK_STEPS * BATCH_SIZE]
        test = (test[0][:1000], test[1][:1000])
    trainer, predictor = build(glorot=args.quick)
    learning_rate = QUICK_LEARNING_RATE if args.quick else LEARNING_RATE
    train_stream = DataStream({"data": x_train, "labels": y_train},
                              ShuffledScheme(len(y_train), BATCH_SIZE, seed=args.seed))
    metric = {"accuracy": accuracy("scores", "labels")}
    eval_train = Monitor(predictor, DataStream({"data": x_train, "labels": y_train},
                                               SequentialScheme(len(y_train), 1000)),
                         metrics=metric, prefix="train")
    eval_test = Monitor(predictor, DataStream({"data": test[0], "labels": test[1]},
                                              SequentialScheme(len(test[1]), 1000)),
                        metrics=metric, prefix="test")
    driver = optimus.Driver(trainer, name="mxnet_cnn",
                            extensions=[FinishAfter(epochs=1), eval_test, eval_train])
    start = time.perf_counter()
    stats = driver.fit(train_stream, {"learning_rate": learning_rate}, print_freq=200)
    seconds = time.perf_counter() - start

    moving_loss = None  # the tutorial's moving average of batch losses, smoothing 0.01
    for value in stats["loss"][~np.isnan(stats["loss"])]:
        moving_loss = value if moving_loss is None else 0.99 * moving_loss + 0.01 * value
    train_acc = stats["train_accuracy"][-1]
    test_acc = stats["test_accuracy"][-1]
    report("Epoch %s. Loss: %s, Train_acc %s, Test_acc %s" % (0, moving_loss, train_acc,
                                                             test_acc))
    result = {"train_accuracy": round(float(train_acc), 4),
              "test_accuracy": round(float(test_acc), 4),
              "loss": round(float(moving_loss), 4), "seconds": round(seconds, 1)}
    report("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
