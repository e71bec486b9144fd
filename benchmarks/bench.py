"""Training and inference throughput of optimus against hand-written peers, as ratios.

Runners: the hand-written eager PyTorch loop (for ConvNets also in channels-last memory
order), ``torch.compile`` of its model and of its whole step (forward, backward, update), the
whole step in one ``jax.jit`` with optax (where JAX is installed: ``pip install -e
".[bench]"``), the optimus graph called as a user calls it, and for the MLPs a hand-written
NumPy forward/backward, in place. One process, runners taking turns round after round (the
order rotates each round), each started from the same initial weights. Before timing, the
first steps of every runner are checked against the hand-written eager PyTorch loop (same
losses: all do the same work).
Reports samples/s and the ratio to eager (min / median / max over rounds), first-call latency
(including any compilation), graph build time, and peak memory (measured in a fresh process
per runner, with the tensor allocations of a step in steady state). Then inference over
10,000 MNIST test rows, and the time to load a saved graph and run its first prediction.
Writes a Markdown table.

Usage (from the repository root, data as in the README):
    OPTIMUS_DATA=../shared/data python benchmarks/bench.py            # full, ~15 minutes
    OPTIMUS_DATA=../shared/data python benchmarks/bench.py --quick    # ~1 minute
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import jax_steps  # noqa: E402
import tensor_peak  # noqa: E402
import optimus  # noqa: E402
import workloads as W  # noqa: E402
from optimus.datasets import mnist  # noqa: E402

RUNNERS = ("eager", "eager_cl", "compile", "compile_step", "jax", "optimus", "numpy")
LABELS = {"eager": "eager PyTorch", "eager_cl": "eager PyTorch, channels-last",
          "compile": "torch.compile(model)", "jax": "JAX jit(whole step)",
          "compile_step": "torch.compile(whole step)",
          "optimus": "optimus graph(**batch)", "numpy": "NumPy by hand"}
SEGMENT_S = {"seed-000": 0.4, "seed-001": 0.4, "seed-002": 0.4, "seed-004": 0.8,
             "seed-004-dropout": 0.8, "seed-004-batchnorm": 0.8, "seed-004-bf16": 0.8,
             "bag-of-words": 0.4}
CHECK_STEPS = 5
# Pause before each timed segment: BLAS worker threads of the previous runner (OpenBLAS in
# NumPy spins for ~0.1 s after a call) would otherwise compete with the next one for the cores.
SETTLE_S = 0.25


# -- runners --------------------------------------------------------------------------------------
def make_runner(w: W.Workload, kind: str):
    """``(step, build seconds)`` for one runner kind, from the workload's initial weights."""
    start = time.perf_counter()
    if kind == "eager":
        step = W.torch_runner(w)
    elif kind == "eager_cl":
        step = W.torch_runner(w, channels_last=True)
    elif kind == "compile":
        step = W.torch_runner(w, compiled="model")
    elif kind == "compile_step":
        step = W.torch_runner(w, compiled="step")
    elif kind == "optimus":
        step, _ = W.optimus_runner(w)
    elif kind == "numpy":
        step = w.numpy(w.params)
    elif kind == "jax":
        step = w.jax(w.params)
    else:
        raise ValueError(kind)
    return step, time.perf_counter() - start


def kinds_for(w: W.Workload, compiled: bool, jax: bool = True) -> list[str]:
    """The runners of one workload; ``compiled``: include torch.compile; ``jax``: include the
    JAX runner where the workload has one and JAX is installed."""
    compiled = compiled and not w.draws_in_model and w.precision is None
    jax = jax and w.jax is not None and jax_steps.available()
    # a model drawing random numbers inside (Dropout) draws them in another order under
    # torch.compile or channels-last, so those runners' losses cannot be checked: left out
    kinds = (["eager"] + (["eager_cl"] if w.maps and not w.draws_in_model else [])
             + (["compile", "compile_step"] if compiled else []) + (["jax"] if jax else [])
             + ["optimus"])
    return kinds + (["numpy"] if w.numpy is not None else [])


def check_and_warm(w: W.Workload, runners: dict) -> dict[str, dict]:
    """Run the first steps of every runner on the same batches and RNG; return first-call
    latency and the largest relative loss difference to the runner it is checked against:
    eager's, except optimus' on a workload naming another (`Workload.optimus_matches`) and
    eager channels-last's where optimus matches it (PyTorch's own two memory orders, whose
    float32 batch statistics drift apart, are not checked against each other)."""
    info, losses = {}, {}
    for kind, step in runners.items():
        torch.manual_seed(0)
        values, times = [], []
        for batch in w.batches[:CHECK_STEPS]:
            start = time.perf_counter()
            values.append(step(batch))
            times.append(time.perf_counter() - start)
        losses[kind] = np.array(values)
        info[kind] = {"first_call_s": times[0], "losses": values}
    for kind, values in losses.items():
        against = w.optimus_matches if kind == "optimus" else "eager"
        if kind == w.optimus_matches:
            against = kind
        info[kind]["checked_against"] = against
        diff = np.abs(values - losses[against]) / np.maximum(np.abs(losses[against]), 1e-6)
        info[kind]["loss_rel_diff"] = float(diff.max())
        if diff.max() > 2e-3:
            raise SystemExit(f"{w.name}: {kind} losses {values} differ from {against} "
                             f"{losses[against]}: the runners do not do the same work")
    return info


def time_rounds(w: W.Workload, runners: dict, rounds: int, segment_s: float) -> dict:
    """Samples/s of each runner per round; the runner order rotates every round."""
    eager = runners["eager"]
    steps = 1
    while True:  # steps per segment so that eager takes about segment_s
        start = time.perf_counter()
        for i in range(steps):
            eager(w.batches[i % len(w.batches)])
        if time.perf_counter() - start > segment_s / 4 or steps > 2000:
            steps = max(3, int(steps * segment_s / (time.perf_counter() - start)))
            break
        steps *= 2
    kinds = list(runners)
    rates = {k: [] for k in kinds}
    offset = 0
    for r in range(rounds + 1):  # round 0 warms up and is not reported
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for kind in order:
            step = runners[kind]
            gc.collect()
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            for i in range(steps):
                step(w.batches[(offset + i) % len(w.batches)])
            elapsed = time.perf_counter() - start
            if r:
                rates[kind].append(steps * w.batch / elapsed)
        offset += steps
    ratios = {k: [a / b for a, b in zip(rates[k], rates["eager"])] for k in kinds}
    return {"steps_per_segment": steps, "rates": rates, "ratios": ratios}


# -- memory (one fresh process per runner) -------------------------------------------------------
def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


TORCH_ALLOCATES = tuple(k for k in RUNNERS if k not in ("jax", "numpy"))  # torch tensors


def allocations_per_step(step, batches: list, steps: int = 5) -> dict:
    """The tensor allocations of ``steps`` steps, per step, as the torch profiler's memory
    records see them: ``{"allocations": count, "allocated_mib": MiB, "peak_tensor_mib":
    MiB}``, counting each op whose own allocations exceed its own frees once, with that net
    size; ``peak_tensor_mib``: the most tensor memory held at once by what those steps
    allocated (activations, gradients, workspace; not the parameters and optimizer state
    that existed before), replaying the profiler's allocation and free records
    (`tensor_peak`). Unlike the resident-memory peak, which moves by several MB from one
    fresh process to the next, this is the same run after run."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for i in range(steps):
            step(batches[i % len(batches)])
    sizes = [e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage > 0]
    return {"allocations": len(sizes) / steps, "allocated_mib": sum(sizes) / steps / 2**20,
            "peak_tensor_mib": tensor_peak.peak_bytes(prof) / 2**20}


def _release_free_heap() -> None:
    """Give the heap's free memory back to the system (glibc's ``malloc_trim``). Under
    `optimus.tune_memory` what loading a workload frees stays in the process, and a runner
    that happens to reuse it would add less resident memory than it needs (seed-004: 57 or
    85-92 MB from one fresh process to the next, for eager PyTorch and optimus alike)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing kept, nothing to release
        pass


def memory_probe(workload: str, kind: str, steps: int = 10) -> dict:
    """Peak resident memory added by building one runner and taking ``steps`` steps; then,
    for the runners whose memory torch allocates, the allocations of a step in steady state."""
    w = W.WORKLOADS[workload]()
    gc.collect()
    _release_free_heap()  # the base: memory in use once the workload is loaded
    base = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the VmHWM peak to VmRSS
    step, _ = make_runner(w, kind)
    for i in range(steps):
        step(w.batches[i % len(w.batches)])
    probe = {"peak_mb": (_status("VmHWM") - base) / 2**20}
    if kind in TORCH_ALLOCATES:
        probe.update(allocations_per_step(step, w.batches[steps:] or w.batches))
    return probe


def measure_memory(workload: str, kind: str) -> dict:
    """`memory_probe` in a fresh process; {} when it fails."""
    try:
        out = subprocess.run([sys.executable, __file__, "--memory-probe", workload, kind],
                             capture_output=True, text=True, timeout=600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return {}


# -- inference and load -------------------------------------------------------------------------
def inference(rounds: int) -> dict:
    """Seed-000 ConvNet predictions on the 10,000 MNIST test rows: optimus (default chunking)
    against eager ``torch.no_grad()`` over all rows at once and in the same chunks."""
    w = W.seed000()
    trainer = w.optimus(w.params)
    nodes = {n: trainer.nodes[n] for n in ("conv", "affine", "classifier", "softmax")}
    data = optimus.Input("data", (None, 1, 28, 28))
    probs = optimus.Output("likelihoods")
    edges = optimus.ConnectionManager([
        (data, nodes["conv"].input), (nodes["conv"].output, nodes["affine"].input),
        (nodes["affine"].output, nodes["classifier"].input),
        (nodes["classifier"].output, nodes["softmax"].input),
        (nodes["softmax"].output, probs)])
    predictor = optimus.Graph("mnist_predictor", [data], list(nodes.values()),
                              edges.connections, [probs])
    _, _, (x, _) = mnist.load()
    x = np.array(x, dtype=np.float32)  # a writable copy: torch.from_numpy warns on read-only
    model = w.torch_model(w.params).eval()
    chunk = predictor._chunk_rows or len(x)

    def eager_all():
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(x)), 1).numpy()

    def eager_chunks():
        out = np.empty((len(x), 10), np.float32)
        with torch.no_grad():
            for i in range(0, len(x), chunk):
                out[i:i + chunk] = torch.softmax(model(torch.from_numpy(x[i:i + chunk])), 1)
        return out

    runners = {"eager no_grad, all rows": eager_all,
               f"eager no_grad, chunks of {chunk}": eager_chunks,
               f"optimus (chunk_size auto = {chunk})": lambda: predictor(data=x)["likelihoods"]}
    expected = eager_all()
    for name, run in runners.items():
        np.testing.assert_allclose(run(), expected, rtol=1e-4, atol=1e-5, err_msg=name)
    rates = {k: [] for k in runners}
    for r in range(rounds):
        for name, run in runners.items():
            gc.collect()
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            run()
            rates[name].append(len(x) / (time.perf_counter() - start))
    with tempfile.TemporaryDirectory() as tmp:
        optimus.save(predictor, Path(tmp) / "def.json", Path(tmp) / "params.npz")
        start = time.perf_counter()
        loaded = optimus.load(Path(tmp) / "def.json", Path(tmp) / "params.npz")
        loaded_s = time.perf_counter() - start
        start = time.perf_counter()
        loaded(data=x[:100])
        first_s = time.perf_counter() - start
    return {"rows": len(x), "rates": rates, "load_s": loaded_s, "first_prediction_s": first_s,
            "engine": predictor.engine.name}


# -- report ---------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "optimus": optimus.__version__,
            "platform": platform.platform()}


def spread(values: list[float]) -> str:
    return (f"{min(values):.2f} / **{statistics.median(values):.2f}** / {max(values):.2f}"
            if values else "—")


def _cl_note(results: dict) -> str:
    """Which workloads check optimus against eager channels-last instead of eager, and why."""
    names = [n for n, r in results.items()
             if r["check"]["optimus"]["checked_against"] == "eager_cl"]
    if not names:
        return ""
    return ("; except on " + ", ".join(names) + ", where optimus' losses are checked against "
            "eager channels-last's, and that runner's are not checked against eager's: "
            "PyTorch sums channels-last batch statistics in float32, so over five Adam steps "
            "its two memory orders' losses drift apart by a few 1e-3 "
            "(`optimus.fast.regularize.BatchNorm`)")


def report(meta: dict, results: dict, infer: dict | None, args) -> str:
    lines = ["# optimus benchmarks", "",
             f"Measured {meta['date']} by `{meta['command']}` "
             f"({'quick' if args.quick else 'full'} run, {args.rounds} rounds).", "",
             f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores "
             f"({meta['machine']['torch_threads']} torch threads); Python "
             f"{meta['machine']['python']}, torch {meta['machine']['torch']}, NumPy "
             f"{meta['machine']['numpy']}, optimus {meta['machine']['optimus']}; "
             f"{meta['machine']['platform']}. Load average before / after: "
             f"{meta['load_before']} / {meta['load_after']}.", "",
             "## Training throughput, as a ratio to the hand-written eager PyTorch loop", "",
             "Median over rounds (higher is faster; eager's own time per step in brackets; "
             "the fastest runner in bold).",
             ""]
    kinds = [k for k in RUNNERS if any(k in r["timing"]["ratios"] for r in results.values())]
    lines.append("| workload | " + " | ".join(LABELS[k] for k in kinds) + " |")
    lines.append("|---" * (len(kinds) + 1) + "|")
    for name, r in results.items():
        ratios = r["timing"]["ratios"]
        eager_ms = 1000 * r["batch"] / statistics.median(r["timing"]["rates"]["eager"])
        cells = []
        fastest = max(ratios, key=lambda k: statistics.median(ratios[k]))
        for k in kinds:
            if k not in ratios:
                cells.append("—")
                continue
            cell = (f"1.00× ({eager_ms:.2f} ms/step)" if k == "eager"
                    else f"{statistics.median(ratios[k]):.2f}×")
            cells.append(f"**{cell}**" if k == fastest else cell)
        lines.append(f"| {name} {r['title']} | " + " | ".join(cells) + " |")
    lines += ["", "## Details", "",
              "| workload | runner | samples/s (median) | ratio to eager min / **median** / max "
              "| peak memory | allocated per step | peak of a step's tensors | first call "
              "| build |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for k in kinds:
            if k not in r["timing"]["ratios"]:
                continue
            probe = r["memory"].get(k) or {}
            mem = probe.get("peak_mb")
            allocs = ("—" if "allocations" not in probe else
                      f"{probe['allocations']:.0f} tensors, {probe['allocated_mib']:.2f} MiB")
            peak = probe.get("peak_tensor_mib")
            first = r["check"][k]["first_call_s"]
            build = r["build_s"][k]
            lines.append(
                f"| {name} | {LABELS[k]} | {statistics.median(r['timing']['rates'][k]):,.0f} "
                f"| {spread(r['timing']['ratios'][k])} "
                f"| {'—' if mem is None else f'{mem:.1f} MB'} | {allocs} "
                f"| {'—' if peak is None else f'{peak:.2f} MiB'} "
                f"| {1000 * first:.1f} ms{' (compiles)' if k.startswith('compile') else ''} "
                f"| {1000 * build:.1f} ms |")
    lines += ["",
              "Loss check: over the first "
              f"{CHECK_STEPS} steps every runner's losses match eager's (largest relative "
              "difference: " + ", ".join(
                  f"{n} {max(v['loss_rel_diff'] for v in r['check'].values()):.1e}"
                  for n, r in results.items()) + ")" + _cl_note(results) + ".",
              "Peak memory: resident memory added by building the runner and taking 10 steps, "
              "in a fresh process (for torch.compile it includes compiling). Allocated per step: "
              "the tensors a training step allocates in steady state, and their size, as the "
              "torch profiler's memory events count them over 5 steps after those 10 (NumPy "
              "and JAX allocate outside torch: not counted). Peak of a step's tensors: over "
              "those 5 steps, the most memory held at once by tensors they allocated "
              "(activations, gradients, workspace; not the parameters and optimizer state), "
              "replaying the profiler's allocation records: unlike the resident peak, which "
              "moves by several MB between fresh processes, the same run after run. First "
              "call: the first training step (for torch.compile, the compilation; the first "
              "torch.compile runner of a process also pays inductor's start-up). Build: "
              "constructing the runner (for optimus, the `Graph`: wiring, shapes and the static "
              "plan).", ""]
    if infer:
        lines += ["## Inference: seed-000 ConvNet on the 10,000 MNIST test rows", "",
                  "| runner | samples/s (median) | ratio to eager all rows |", "|---|---|---|"]
        base = statistics.median(next(iter(infer["rates"].values())))
        for name, values in infer["rates"].items():
            med = statistics.median(values)
            lines.append(f"| {name} | {med:,.0f} | {med / base:.2f}× |")
        lines += ["", f"Loading the saved predictor (`optimus.load` of its JSON + .npz): "
                  f"{1000 * infer['load_s']:.1f} ms; its first prediction (100 rows): "
                  f"{1000 * infer['first_prediction_s']:.1f} ms.", ""]
    return "\n".join(lines)


def _warm_up_torch() -> None:
    """Pay torch's one-time lazy initialisation (optimizers, autograd, kernels) before any
    runner is built or timed, so that it is charged to none of them."""
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(model(torch.rand(3, 4)), torch.tensor([0, 1, 0])).backward()
    opt.step()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds, shorter segments, no torch.compile")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workloads", default=",".join(W.WORKLOADS))
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="include torch.compile of the hand loop (default: not in --quick)")
    parser.add_argument("--jax", action=argparse.BooleanOptionalAction, default=True,
                        help="include the JAX runner where JAX is installed (default: yes)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--memory-probe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    optimus.tune_memory()  # as a training script should (README, "Speed"); every runner gains
    if args.memory_probe:
        print(json.dumps(memory_probe(*args.memory_probe)))
        return
    args.rounds = args.rounds or (3 if args.quick else 7)
    compiled = (not args.quick) if args.compile is None else args.compile
    scale = 0.4 if args.quick else 1.0
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "command": "python benchmarks/bench.py" + (" --quick" if args.quick else ""),
            "load_before": "%.2f" % os.getloadavg()[0]}
    _warm_up_torch()
    results = {}
    for name in args.workloads.split(","):
        w = W.WORKLOADS[name]()
        print(f"{name}: building runners", flush=True)
        runners, build = {}, {}
        for kind in kinds_for(w, compiled, args.jax):
            runners[kind], build[kind] = make_runner(w, kind)
        check = check_and_warm(w, runners)
        print(f"{name}: losses agree; timing {args.rounds} rounds", flush=True)
        timing = time_rounds(w, runners, args.rounds, SEGMENT_S[name] * scale)
        memory = {}
        if args.memory:
            for kind in runners:
                memory[kind] = measure_memory(name, kind)
        results[name] = {"title": w.title, "batch": w.batch, "check": check, "timing": timing,
                         "build_s": build, "memory": memory}
        print(f"{name}: " + ", ".join(f"{k} {statistics.median(v):.2f}x"
                                      for k, v in timing["ratios"].items()), flush=True)
        del runners
        gc.collect()
    print("inference", flush=True)
    infer = inference(args.rounds)
    meta["load_after"] = "%.2f" % os.getloadavg()[0]
    text = report(meta, results, infer, args)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
