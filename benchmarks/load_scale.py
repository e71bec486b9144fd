"""How `optimus.load` scales: load time of a chain definition of 1,000, 10,000 and 100,000
nodes (an Input, then alternating shape-preserving activations and Affine layers of width 8,
a SoftmaxCrossEntropyLoss), written once with `optimus.save` and read back.

    python benchmarks/load_scale.py                 # 1k, 10k, 100k
    python benchmarks/load_scale.py --sizes 1000 40000

Prints one line per size: nodes, definition bytes, seconds to load (best of ``--repeat``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import optimus
from optimus.serialize import FORMAT_VERSION

ACTIVATIONS = ("RectifiedLinear", "Tanh", "Sigmoid")


def chain_definition(nodes: int, width: int = 8) -> dict:
    """A chain of ``nodes`` nodes: every fourth an Affine, the others activations."""
    doc_nodes, connections = [], {}
    previous = "x"
    for i in range(nodes - 1):
        name = f"n{i}"
        if i % 4 == 0:
            doc_nodes.append({"type": "Affine", "name": name, "input_shape": [None, width],
                              "output_shape": [None, width], "act_type": "linear"})
        else:
            doc_nodes.append({"type": ACTIVATIONS[i % 3], "name": name})
        connections[previous] = [f"{name}.input"]
        previous = f"{name}.output"
    doc_nodes.append({"type": "SoftmaxCrossEntropyLoss", "name": "loss"})
    connections[previous] = ["loss.logits"]
    connections["y"] = ["loss.index"]
    connections["loss.output"] = ["cost"]
    return {"type": "Graph", "format_version": FORMAT_VERSION, "name": f"chain{nodes}",
            "inputs": [{"type": "Input", "name": "x", "shape": [None, width]},
                       {"type": "Input", "name": "y", "shape": [None], "dtype": "int64"}],
            "nodes": doc_nodes, "connections": connections,
            "outputs": [{"type": "Output", "name": "cost"}]}


def time_load(nodes: int, repeat: int, folder: Path) -> tuple[int, float]:
    """``(definition bytes, best load seconds)`` for a chain of ``nodes`` nodes."""
    path = folder / f"chain{nodes}.json"
    path.write_text(json.dumps(chain_definition(nodes)), encoding="utf-8")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        graph = optimus.load(path)
        best = min(best, time.perf_counter() - start)
        assert len(graph.nodes) == nodes
        del graph
    return path.stat().st_size, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'nodes':>8} {'bytes':>12} {'load s':>8} {'ms/node':>8}")
        for n in args.sizes:
            size, seconds = time_load(n, args.repeat, Path(folder))
            print(f"{n:>8,} {size:>12,} {seconds:>8.2f} {1000 * seconds / n:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
