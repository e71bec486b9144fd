"""Where the time of a seed-004 prediction goes, layer by layer: optimus' ``graph(**x)`` against
ONNX Runtime (CPU) on the model `optimus.export_onnx` wrote, each timed by its own profiler
inside a whole prediction of the MNIST test rows.

`inference_onnx.py` compares the two predictors' speed; this says which part of a prediction a
difference comes from. Each layer is a convolution with its relu (one kernel in both) and a
max-pooling. optimus: the torch profiler's self time of each oneDNN call, told apart by its
input's shape. ONNX Runtime: its profiler's time per node (``*_kernel_time`` events) in each
``model_run``. "everything else" is the rest of the call: for optimus the reorders in and out
of oneDNN's blocked maps, the dense layer, the chunking, the NaN bound; for ONNX Runtime its
reorder and dense layer. Both profilers add a little time of their own. Rounds alternate; reported:
ms per 10,000 rows, median over rounds.

Usage (from the repository root, data as in the README):
    OPTIMUS_DATA=../shared/data python benchmarks/inference_layers.py [--rounds 5] [--threads 2]
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import optimus  # noqa: E402
from inference_onnx import ort_session, setup  # noqa: E402
from optimus.examples import seed004_flux_conv  # noqa: E402

SETTLE_S = 0.2  # a pause before each timed call: the other runner's threads spin a while
PARTS = ("conv0 + relu", "pool0", "conv1 + relu", "pool1", "conv2 + relu", "pool2",
         "everything else", "whole call")


def optimus_parts(predictor: optimus.Graph, x: np.ndarray) -> dict[str, float]:
    """One call ``predictor(images=x)`` under the torch profiler: ms per part."""
    from torch.profiler import ProfilerActivity, profile
    convs = {tuple(predictor.param_values[f"conv{i}.weights"].shape): i for i in range(3)}
    parts: dict[str, float] = defaultdict(float)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        start = time.perf_counter()
        predictor(images=x)
        wall = (time.perf_counter() - start) * 1e3
    for event in prof.events():
        shapes = event.input_shapes
        if event.name == "mkldnn::_convolution_pointwise":
            i = convs[tuple(shapes[1])]
            parts[f"conv{i} + relu"] += event.self_cpu_time_total / 1e3
        elif event.name == "aten::mkldnn_max_pool2d":  # told apart by the maps' size
            i = {28: 0, 14: 1, 7: 2}[shapes[0][2]]
            parts[f"pool{i}"] += event.self_cpu_time_total / 1e3
    parts["everything else"] = wall - sum(parts.values())
    parts["whole call"] = wall
    return dict(parts)


def onnx_parts(profile_file: str, rounds: int) -> list[dict[str, float]]:
    """ms per part of each of the last ``rounds`` runs in ONNX Runtime's profile."""
    events = json.loads(Path(profile_file).read_text())
    runs = [e for e in events if e.get("name") == "model_run"][-rounds:]
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    out = []
    for run in runs:
        inside = sorted((e for e in nodes if run["ts"] <= e["ts"] <= run["ts"] + run["dur"]),
                        key=lambda e: e["ts"])
        convs = [e for e in inside if "relu" in e["name"] or "conv" in e["name"].lower()]
        pools = [e for e in inside if "pool" in e["name"]]
        parts = {f"conv{i} + relu": e["dur"] / 1e3 for i, e in enumerate(convs)}
        parts.update({f"pool{i}": e["dur"] / 1e3 for i, e in enumerate(pools)})
        parts["everything else"] = run["dur"] / 1e3 - sum(parts.values())
        parts["whole call"] = run["dur"] / 1e3
        out.append(parts)
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    import onnxruntime
    args, x = setup(argv, __doc__)
    predictor = seed004_flux_conv.build()[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed004.onnx"
        signature = optimus.export_onnx(predictor, path)
        session = ort_session(path, args.threads, profile_prefix=str(Path(tmp) / "ort"))
        name = signature.inputs[0]
        np.testing.assert_allclose(session.run(None, {name: x})[0],
                                   predictor(images=x)["logits"], rtol=1e-4, atol=1e-4)
        mine = []
        for r in range(args.rounds):
            for runner in ("optimus", "onnx") if r % 2 == 0 else ("onnx", "optimus"):
                gc.collect()
                time.sleep(SETTLE_S)
                if runner == "optimus":
                    mine.append(optimus_parts(predictor, x))
                else:
                    session.run(None, {name: x})
        theirs = onnx_parts(session.end_profiling(), args.rounds)
    scale = 10_000 / len(x)
    results = {label: {part: statistics.median(r[part] for r in runs) * scale for part in PARTS}
               for label, runs in (("optimus graph(**x)", mine), ("ONNX Runtime (CPU)", theirs))}
    print(f"seed-004 predictor on {len(x):,} MNIST test rows, {args.threads} threads, "
          f"{args.rounds} rounds (torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}); ms per 10,000 rows, median over rounds:\n")
    print("| part | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for part in PARTS:
        print(f"| {part} | " + " | ".join(f"{r[part]:.1f}" for r in results.values()) + " |")
    return results


if __name__ == "__main__":
    main()
