"""Seed 002: the Blocks + Fuel MNIST MLP tutorial, in optimus.

An MLP 784-100-10 (relu, softmax) with weights drawn from N(0, 0.01) and zero biases is trained
on the cost ``mean cross-entropy + 0.005 * (|W1|^2 + |W2|^2)`` by SGD at learning rate 0.1 on
the 60,000 MNIST training images, flattened, in batches of 256 taken in order (Fuel's
``SequentialScheme``). The test set is monitored in batches of 1024 (the cost with
regularization and the error rate) and training finishes after one epoch, as Blocks'
``MainLoop`` with ``DataStreamMonitoring`` and ``FinishAfter(after_n_epochs=1)`` does.

    python examples/seed002_blocks_mlp.py [--quick] [--epochs 1] [--output-dir DIR]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import optimus
from optimus.data import DataStream, FlattenFeatures, SequentialScheme
from optimus.datasets import mnist
from optimus.train import FinishAfter, Monitor, error_rate


def report(*lines: str) -> None:
    """Print on rank 0 alone: under torchrun every process runs this script."""
    if optimus.distributed.is_main():
        print(*lines)


L2_WEIGHT = 0.005


def build(engine: str = "auto") -> tuple[optimus.Graph, optimus.Graph]:
    """The trainer (cost with regularization, plain SGD on every parameter) and a predictor
    sharing its nodes (cost, cross-entropy and likelihoods, for monitoring)."""
    features = optimus.Input(name="features", shape=(None, 784))
    targets = optimus.Input(name="targets", shape=(None,), dtype="int64")
    learning_rate = optimus.Input(name="learning_rate", shape=None)

    input_to_hidden = optimus.Affine(name="input_to_hidden", input_shape=features.shape,
                                     output_shape=(None, 100), act_type="relu")
    hidden_to_output = optimus.Affine(name="hidden_to_output",
                                      input_shape=input_to_hidden.output.shape,
                                      output_shape=(None, 10), act_type="linear")
    softmax = optimus.Softmax(name="softmax")
    cross_entropy = optimus.SoftmaxCrossEntropyLoss(name="cross_entropy")
    decay_1 = optimus.WeightDecayPenalty(name="decay_1", weight=L2_WEIGHT)
    decay_2 = optimus.WeightDecayPenalty(name="decay_2", weight=L2_WEIGHT)
    regularized = optimus.Add(name="regularized", num_inputs=3)
    nodes = [input_to_hidden, hidden_to_output, cross_entropy, decay_1, decay_2, regularized]

    cost = optimus.Output(name="cost")  # Blocks' cost_with_regularization
    xent = optimus.Output(name="cross_entropy_cost")
    likelihoods = optimus.Output(name="likelihoods")
    pairs = [
        (features, input_to_hidden.input),
        (input_to_hidden.output, hidden_to_output.input),
        (hidden_to_output.output, cross_entropy.logits),
        (targets, cross_entropy.index),
        (input_to_hidden.weights, decay_1.input),  # W1 and W2 are sources themselves
        (hidden_to_output.weights, decay_2.input),
        (cross_entropy.output, regularized.input_0),
        (decay_1.output, regularized.input_1),
        (decay_2.output, regularized.input_2),
        (regularized.output, cost)]
    monitored = [(hidden_to_output.output, softmax.input), (softmax.output, likelihoods),
                 (cross_entropy.output, xent)]
    updates = optimus.ConnectionManager(
        [(learning_rate, p) for node in (input_to_hidden, hidden_to_output)
         for p in (node.weights, node.bias)]).connections

    trainer = optimus.Graph(name="blocks_mlp", inputs=[features, targets, learning_rate],
                            nodes=nodes, connections=optimus.ConnectionManager(pairs).connections,
                            outputs=[cost], loss=cost,
                            updates=updates, step_rule=optimus.optim.SGD(), engine=engine)
    predictor = optimus.Graph(name="blocks_mlp_predictor", inputs=[features, targets],
                              nodes=nodes + [softmax],
                              connections=optimus.ConnectionManager(pairs + monitored).connections,
                              outputs=[cost, xent, likelihoods], engine=engine)
    for node in (input_to_hidden, hidden_to_output):
        optimus.random_init(node.weights, mean=0.0, std=0.01)  # IsotropicGaussian(0.01)
    return trainer, predictor


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", default=None, help="where to keep the checkpoint")
    args = parser.parse_args(argv)
    optimus.tune_memory()  # keep freed activation memory between steps (glibc; see README)
    np.random.seed(args.seed)

    start = time.perf_counter()
    train, valid, test = mnist.load()
    features = np.concatenate([train[0], valid[0]])  # Fuel's MNIST("train"): all 60,000
    targets = np.concatenate([train[1], valid[1]])
    test_features, test_targets = test
    if args.quick:
        features, targets = features[:2560], targets[:2560]
        test_features, test_targets = test_features[:2048], test_targets[:2048]

    data_stream = FlattenFeatures(DataStream({"features": features, "targets": targets},
                                             SequentialScheme(len(targets), batch_size=256)))
    data_stream_test = FlattenFeatures(DataStream(
        {"features": test_features, "targets": test_targets},
        SequentialScheme(len(test_targets), batch_size=1024)))

    trainer, predictor = build()
    monitor = Monitor(predictor, data_stream_test, outputs=["cost", "cross_entropy_cost"],
                      metrics={"error": error_rate("likelihoods", "targets")}, prefix="test")
    before = monitor.evaluate()
    report("Before training: " + "  ".join(f"{k}={v:.4f}" for k, v in before.items()))

    driver = optimus.Driver(trainer, name="seed002", output_directory=args.output_dir,
                            extensions=[monitor, FinishAfter(epochs=args.epochs)])
    train_start = time.perf_counter()
    stats = driver.fit(data_stream, hyperparams={"learning_rate": 0.1}, print_freq=50)
    train_seconds = time.perf_counter() - train_start

    report(f"After {driver.epoch} epoch(s), {driver.iteration} iterations: "
           f"test_cost_with_regularization={stats.last('test_cost'):.4f}  "
           f"test_cross_entropy={stats.last('test_cross_entropy_cost'):.4f}  "
           f"test_error={stats.last('test_error'):.4f}")
    result = {"test_cost": round(stats.last("test_cost"), 4),
              "test_cross_entropy": round(stats.last("test_cross_entropy_cost"), 4),
              "test_error": round(stats.last("test_error"), 4),
              "iterations": driver.iteration, "epochs": driver.epoch,
              "train_seconds": round(train_seconds, 2),
              "seconds": round(time.perf_counter() - start, 2)}
    report("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
