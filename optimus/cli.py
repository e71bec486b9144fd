"""The ``optimus`` command: run the seed demos, inspect and score saved graphs."""
from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence

import numpy as np

DEMOS = {  # demo name -> example module (examples/ ships as optimus.examples)
    "mnist": "seed000_mnist_convnet",
    "sentiment": "seed001_sentiment_mlp",
    "blocks": "seed002_blocks_mlp",
    "cnn": "seed003_mxnet_cnn",
    "flux": "seed004_flux_conv",
}


def _demo(args: argparse.Namespace) -> int:
    try:
        module = importlib.import_module(f"optimus.examples.{DEMOS[args.name]}")
    except ModuleNotFoundError as err:
        print(f"optimus demo {args.name}: this installation lacks its example ({err})",
              file=sys.stderr)
        return 2
    module.main(args.rest)
    return 0


def _info(args: argparse.Namespace) -> int:
    import optimus

    graph = optimus.load(args.definition, args.params)
    print(f"Graph '{graph.name}'")
    for inp in graph.inputs.values():
        print(f"  input  {inp.name:<24} shape={inp.shape or 'scalar'} dtype={inp.dtype}")
    total = 0
    for node in graph.order:
        count = sum(math.prod(p.shape) for p in node.params.values())
        total += count
        shapes = ", ".join(f"{p.short_name}={graph.shapes[p.name]}"
                           for p in node.outputs.values())
        print(f"  node   {node.name:<24} {type(node).__name__:<28} {shapes}  params={count:,}"
              f"  engine={graph.engines[node.name]}")
    for out in graph.outputs:
        print(f"  output {out:<24} shape={graph.shapes[out] or 'scalar'}")
    print(f"  {total:,} parameters; trains {sum(len(v) for v in graph.updates.values())} "
          f"of them with {type(graph.step_rule).__name__}")
    for name, reason in graph.engine_reasons.items():
        print(f"  {name} runs through autograd: {reason}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import optimus
    from optimus.datasets import mnist

    if args.dataset != "mnist":
        print(f"optimus eval: unknown dataset {args.dataset!r}; use mnist", file=sys.stderr)
        return 2
    graph = optimus.load(args.definition, args.params)
    _, _, (data, labels) = mnist.load()
    feed = {}
    for name, inp in graph.inputs.items():
        if inp.shape == ():
            feed[name] = 0.0
        elif np.issubdtype(np.dtype(inp.dtype), np.integer):
            feed[name] = labels
        else:
            feed[name] = data.reshape((len(data),) + tuple(inp.shape[1:]))
    out_name = args.output or next(o for o in graph.outputs if graph.shapes[o] != ())
    scores = graph(**feed)[out_name]
    accuracy = float(np.mean(scores.argmax(axis=1) == labels))
    print(f"RESULT dataset=mnist-test accuracy={accuracy:.4f} error={1 - accuracy:.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optimus", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a seed workflow (default: mnist)")
    demo.add_argument("name", nargs="?", default="mnist", choices=sorted(DEMOS))
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="options for the example "
                      "(e.g. --quick)")
    info = commands.add_parser("info", help="print nodes, shapes and parameter counts")
    info.add_argument("definition")
    info.add_argument("params", nargs="?")
    evaluate = commands.add_parser("eval", help="score a saved classifier on a dataset")
    evaluate.add_argument("definition")
    evaluate.add_argument("params")
    evaluate.add_argument("--dataset", default="mnist")
    evaluate.add_argument("--output", default=None, help="the output holding class scores")
    args = parser.parse_args(argv)
    if args.command in ("demo", "eval"):
        import optimus

        optimus.tune_memory()  # a command that computes: keep freed buffers (see README)
    handler = {"demo": _demo, "info": _info, "eval": _eval}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
