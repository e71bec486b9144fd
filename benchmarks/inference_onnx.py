"""Inference of 10,000 MNIST test rows: optimus ``graph(**x)`` against ONNX Runtime (CPU) on the
model `optimus.export_onnx` wrote, for the seed-000 and seed-004 predictors, in one process.

Both get the same threads (``--threads``, default 2: ``torch.set_num_threads`` for optimus,
``intra_op_num_threads`` for ONNX Runtime, one inter-op thread each). Before timing, each
runner's predictions are checked against optimus' (<= 1e-5 relative to the largest value).
Then rounds in turn (the order alternates), each timing one full pass over the rows after a
pause of ``SETTLE_S`` (the previous runner's threads, ONNX Runtime's and OpenMP's, spin for a
while after their last call and would slow the next runner down); reported:
rows/s (median, min-max over rounds) and ONNX Runtime's speed relative to optimus. optimus runs
as a user calls it (its default chunking); ONNX Runtime gets all rows in one call.

Usage (from the repository root, data as in the README):
    OPTIMUS_DATA=../shared/data python benchmarks/inference_onnx.py [--rounds 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optimus  # noqa: E402
from optimus.datasets import mnist  # noqa: E402
from optimus.examples import seed000_mnist_convnet, seed004_flux_conv  # noqa: E402

SETTLE_S = 0.2


def seed000_predictor() -> optimus.Graph:
    """The seed-000 ConvNet without its loss: data -> conv -> affine -> classifier -> softmax."""
    trainer = seed000_mnist_convnet.build_trainer()
    nodes = [trainer.nodes[n] for n in ("conv", "affine", "classifier", "softmax")]
    data, probs = optimus.Input("data", (None, 1, 28, 28)), optimus.Output("likelihoods")
    chain = [(data, nodes[0].input)] + [(a.output, b.input) for a, b in zip(nodes, nodes[1:])]
    return optimus.Graph("mnist_predictor", [data], nodes, optimus.ConnectionManager(
        chain + [(nodes[-1].output, probs)]).connections, [probs])


def ort_session(path: Path, threads: int, profile_prefix: str | None = None):
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads and one
    inter-op thread; profiling into files named ``profile_prefix*`` when given."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    if profile_prefix is not None:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runners(graph: optimus.Graph, path: Path, threads: int) -> tuple[dict, float]:
    start = time.perf_counter()
    signature = optimus.export_onnx(graph, path)
    export_s = time.perf_counter() - start
    session = ort_session(path, threads)
    name, out = signature.inputs[0], signature.outputs[0]
    return {"optimus graph(**x)": lambda x: graph(**{name: x})[out],
            "ONNX Runtime (CPU)": lambda x: session.run([out], {name: x})[0]}, export_s


def measure(label: str, graph: optimus.Graph, x: np.ndarray, rounds: int, threads: int,
            folder: Path) -> dict:
    runs, export_s = runners(graph, folder / f"{label}.onnx", threads)
    expected = next(iter(runs.values()))(x)
    scale = float(np.max(np.abs(expected)))
    for name, run in runs.items():
        np.testing.assert_allclose(run(x), expected, rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=f"{label}: {name}")
    rates: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order if r % 2 == 0 else order[::-1]:
            gc.collect()
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            runs[name](x)
            rates[name].append(len(x) / (time.perf_counter() - start))
    return {"rates": rates, "export_s": export_s}


def report(results: dict, rows: int, rounds: int, threads: int) -> str:
    lines = [f"Inference of {rows:,} MNIST test rows, {threads} threads, {rounds} rounds "
             f"(torch {torch.__version__}); rows/s median (min-max), ratio to optimus:", "",
             "| predictor | runner | rows/s | ratio | export (s) |", "|---|---|---|---|---|"]
    for label, result in results.items():
        base = statistics.median(result["rates"]["optimus graph(**x)"])
        for name, rates in result["rates"].items():
            median = statistics.median(rates)
            lines.append(f"| {label} | {name} | {median:,.0f} ({min(rates):,.0f}-"
                         f"{max(rates):,.0f}) | {median / base:.2f}x | "
                         f"{result['export_s']:.1f} |")
    return "\n".join(lines)


def setup(argv: list[str] | None, doc: str) -> tuple[argparse.Namespace, np.ndarray]:
    """The command line of this script and of `inference_layers.py` (``--rounds``,
    ``--threads``, ``--rows``) and the MNIST test rows, a writable float32 copy; sets torch's
    threads and seeds NumPy's global state, from which the example builders draw weights."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _, _, (x, _) = mnist.load(download=False)
    np.random.seed(0)
    return args, np.array(x[:args.rows], dtype=np.float32)


def main(argv: list[str] | None = None) -> None:
    args, x = setup(argv, __doc__)
    graphs = {"seed-000": seed000_predictor(), "seed-004": seed004_flux_conv.build()[1]}
    with tempfile.TemporaryDirectory() as tmp:
        results = {label: measure(label, graph, x, args.rounds, args.threads, Path(tmp))
                   for label, graph in graphs.items()}
    print(report(results, len(x), args.rounds, args.threads))


if __name__ == "__main__":
    main()
