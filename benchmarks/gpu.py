"""The seed-004 ConvNet on a CUDA GPU: training steps of optimus (fast engine and reference
engine) against the hand-written eager PyTorch loop on the same GPU, in float32 and under
bfloat16 autocast, and inference on 10,000 rows against eager ``no_grad``.

    OPTIMUS_DATA=../shared/data python benchmarks/gpu.py [--rounds 5] [--segment 1.0]

Every runner takes the same NumPy batches (copied to the GPU each step) and returns the loss
as a Python float, so each step ends with the GPU's work done; the losses of the first steps
are checked against eager's first. Medians of interleaved rounds, as `bench.py` does; the
ratios are to eager in the same run. Needs a CUDA device; made for the GPU the README reports.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

import bench
import workloads as W
from optimus.datasets import mnist
from optimus.examples import seed004_flux_conv as example004

INFERENCE_ROWS = 10_000


def training(w: W.Workload, rounds: int, segment_s: float) -> dict:
    """Samples/s per round of eager, optimus and optimus' reference engine on the GPU."""
    mine, graph = W.optimus_runner(w, device="cuda")
    runners = {"eager": W.torch_runner(w, device="cuda"), "optimus": mine,
               "optimus (reference engine)": W.optimus_runner(w, "reference", "cuda")[0]}
    checks = bench.check_and_warm(w, runners)
    timed = bench.time_rounds(w, runners, rounds, segment_s)
    return {"checks": checks, "autograd_nodes": graph.engine.reasons, **timed}


def inference(w: W.Workload, rounds: int) -> dict[str, list[float]]:
    """Rows/s of the predictor on `INFERENCE_ROWS` test rows: optimus' ``graph(images=x)``
    (NumPy in and out, as a user calls it) and eager ``no_grad`` (the same copies, by hand)."""
    _, _, (x, _) = mnist.load()
    x = np.array(x[:INFERENCE_ROWS], dtype=np.float32)  # writable: torch.from_numpy warns
    _, predictor = example004.build(device="cuda")
    predictor.param_values = w.params
    model = w.torch_model(w.params).to("cuda").eval()

    def eager() -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x).to("cuda")).cpu().numpy()

    def mine() -> np.ndarray:
        return predictor(images=x)["logits"]

    np.testing.assert_allclose(mine(), eager(), rtol=1e-3, atol=1e-3)
    rates: dict[str, list[float]] = {"eager": [], "optimus": []}
    for r in range(rounds + 1):  # round 0 warms up and is not reported
        for name, run in (("eager", eager), ("optimus", mine)):
            start = time.perf_counter()
            for _ in range(5):
                run()
            if r:
                rates[name].append(5 * INFERENCE_ROWS / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--segment", type=float, default=1.0, help="seconds of eager a round")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs a CUDA device; this machine has none")
    print(f"# {torch.cuda.get_device_name(0)}, torch {torch.__version__}, medians of "
          f"{args.rounds} rounds, ratio to eager in the same run\n")
    print("| workload | runner | samples/s | ratio to eager | first-step loss rel. diff |")
    print("|---|---|---|---|---|")
    result = {}
    for w in (W.seed004(), W.seed004_bf16()):
        out = training(w, args.rounds, args.segment)
        for kind, rates in out["rates"].items():
            ratio = statistics.median(out["ratios"][kind])
            print(f"| {w.name} | {kind} | {statistics.median(rates):,.0f} | {ratio:.2f}x | "
                  f"{out['checks'][kind]['loss_rel_diff']:.1e} |")
        result[w.name] = statistics.median(out["ratios"]["optimus"])
        print(f"| {w.name} | fast engine's nodes through autograd | "
              f"{out['autograd_nodes'] or 'none'} | | |")
    rates = inference(W.seed004(), args.rounds)
    print(f"\ninference, {INFERENCE_ROWS:,} rows: " + ", ".join(
        f"{k} {statistics.median(v):,.0f} rows/s" for k, v in rates.items()))
    result["inference"] = statistics.median(rates["optimus"]) / statistics.median(rates["eager"])
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
