"""Seed 004: the Flux model-zoo ConvNet on MNIST, in optimus.

Three conv 3x3 (pad 1) + relu + max-pool 2 blocks (16, 32, 32 maps) and a dense 288 -> 10 layer,
trained with Adam 3e-3 on batches of 128 taken in order, with Gaussian noise (std 0.1) added to
the images in training steps only. After every epoch the test accuracy is measured and, with
Flux's rules (a tie with the best counts as an improvement), the best model is saved (definition
+ parameters), the learning rate drops 10x after 5 epochs without improvement (while above
1e-6), and training ends after 20 epochs, after 10 epochs without improvement (counted afresh
after a drop), or at 99.9 %. Then the best model is loaded from disk and tested.

    python examples/seed004_flux_conv.py [--quick] [--epochs 20] [--output-dir DIR]
                                         [--precision bf16] [--device cuda]

``--precision bf16`` trains with the convolutions and the dense layer's products in bfloat16
(`Driver.fit(precision='bf16')`): faster on CPUs with AMX; on a GPU this model is too small for
it to pay (README, "GPUs").
``--device cuda`` builds both graphs on this process's GPU (``cuda:LOCAL_RANK`` under torchrun).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import optimus
from optimus.data import DataStream, SequentialScheme
from optimus.datasets import mnist
from optimus.train import (EarlyStopping, FinishAfter, Monitor, ReduceLROnPlateau, SaveBest,
                           accuracy)


def report(*lines: str) -> None:
    """Print on rank 0 alone: under torchrun every process runs this script."""
    if optimus.distributed.is_main():
        print(*lines)


def build(noise_std: float = 0.1, dropout: float = 0.0, batch_norm: bool = False,
          engine: str = "auto", device: str = "cpu") -> tuple[optimus.Graph, optimus.Graph]:
    """The trainer (noise, convs, dense, softmax cross-entropy, Adam) and a predictor graph
    sharing its nodes, both on ``device``. ``dropout`` (a rate before the dense layer) and
    ``batch_norm`` (after each conv) are variants the benchmarks measure; the tutorial has
    neither."""
    images = optimus.Input("images", (None, 1, 28, 28))
    labels = optimus.Input("labels", (None,), "int64")
    lr = optimus.Input("learning_rate", None)

    # acts only in training steps; input_shape gives noise.output.shape for the first conv
    noise = optimus.GaussianNoise("noise", std=noise_std, input_shape=images.shape)
    layers = []
    for i, maps in enumerate((16, 32, 32)):
        shape = layers[-1].output.shape if layers else noise.output.shape
        conv = optimus.Conv2D(f"conv{i}", shape, num_filters=maps, kernel_size=3, padding=1,
                              act_type="relu")
        optimus.glorot_uniform_init(conv.weights)  # Flux's default initialisation
        layers.append(conv)
        if batch_norm:
            layers.append(optimus.BatchNorm(f"norm{i}", conv.output.shape))
        layers.append(optimus.MaxPool(f"pool{i}", layers[-1].output.shape, pool_shape=2))
    if dropout:
        layers.append(optimus.Dropout("dropout", dropout, input_shape=layers[-1].output.shape))
    dense = optimus.Affine("dense", layers[-1].output.shape, (None, 10), act_type="linear")
    optimus.glorot_uniform_init(dense.weights)  # 288 -> 10
    layers.append(dense)
    xent = optimus.SoftmaxCrossEntropyLoss("xent")

    def chain(first):
        return [(first, layers[0].input)] + [(a.output, b.input)
                                             for a, b in zip(layers, layers[1:])]

    loss, logits = optimus.Output("loss"), optimus.Output("logits")
    trainer = optimus.Graph(
        "flux_trainer", [images, labels, lr], [noise, *layers, xent],
        optimus.ConnectionManager([(images, noise.input)] + chain(noise.output) + [
            (dense.output, xent.logits), (labels, xent.index), (dense.output, logits),
            (xent.output, loss)]).connections,
        [loss, logits], loss,
        {"learning_rate": [p.name for n in layers for p in n.params.values() if p.trainable]},
        step_rule=optimus.optim.Adam(), engine=engine, device=device)
    predictor = optimus.Graph(
        "flux_predictor", [images], layers,
        optimus.ConnectionManager(chain(images) + [(dense.output, logits)]).connections,
        [logits], engine=engine, device=device)
    return trainer, predictor


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="of the training steps' products (evaluation stays float32)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: this process's GPU (cuda:LOCAL_RANK under torchrun)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no CUDA device")
    optimus.tune_memory()  # keep freed activation memory between steps (glibc; see README)
    np.random.seed(args.seed)  # initial weights
    torch.manual_seed(args.seed)  # training noise

    train, valid, test = mnist.load()
    x_train = np.concatenate([train[0], valid[0]])  # Flux trains on all 60,000 images
    y_train = np.concatenate([train[1], valid[1]])
    epochs = args.epochs
    if args.quick:
        x_train, y_train, test, epochs = x_train[:1280], y_train[:1280], (
            test[0][:1000], test[1][:1000]), 2
    train_stream = DataStream({"images": x_train, "labels": y_train},
                              SequentialScheme(len(y_train), 128))
    test_stream = DataStream({"images": test[0], "labels": test[1]},
                             SequentialScheme(len(test[1]), 1000))

    device = optimus.distributed.local_device() if args.device == "cuda" else "cpu"
    trainer, predictor = build(device=device)
    out_dir = Path(args.output_dir or tempfile.mkdtemp(prefix="optimus-seed004-"))
    save_best = SaveBest("test_accuracy", mode="max", path=out_dir / "flux_best.npz",
                         graph=predictor, ties_improve=True)  # also writes flux_best.json
    extensions = [  # Flux's loop: ties count as improvements; patience restarts after a drop
        Monitor(predictor, test_stream, metrics={"accuracy": accuracy("logits", "labels")},
                prefix="test"),
        save_best,
        ReduceLROnPlateau("test_accuracy", mode="max", patience=5, factor=0.1,
                          ties_improve=True, min_value=1e-6, clamp_to_min=False),
        EarlyStopping("test_accuracy", mode="max", patience=10, target=0.999,
                      ties_improve=True, reset_on_lr_drop=True),
        FinishAfter(epochs=epochs),
    ]
    driver = optimus.Driver(trainer, name="flux", output_directory=out_dir,
                            extensions=extensions)
    start = time.perf_counter()
    stats = driver.fit(train_stream, {"learning_rate": 3e-3}, print_freq=100,
                       precision=args.precision)
    seconds = time.perf_counter() - start

    best = save_best.load()  # from disk (rank 0 alone writes it), else the kept values
    scores = best(images=test[0])["logits"]
    final = float(np.mean(scores.argmax(axis=1) == test[1]))
    report(f"accuracy(test_set..., model) = {final:.4f}")

    _, accuracies = stats.recorded("test_accuracy")  # one per epoch
    best_epoch = len(accuracies) - int(np.argmax(accuracies[::-1]))  # ties: the latest saved
    result = {"test_accuracy": round(final, 4), "best_epoch": best_epoch,
              "epochs": driver.epoch, "seconds_per_epoch": round(seconds / max(driver.epoch, 1), 2),
              "seconds": round(seconds, 1), "precision": args.precision, "device": args.device}
    report("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main()
