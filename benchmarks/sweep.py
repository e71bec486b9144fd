"""The cost as the work grows: training samples/s of optimus, the hand-written eager PyTorch loop,
the whole step in one ``jax.jit`` (where JAX is installed) and, for the MLPs with SGD, NumPy by
hand in place, over a grid of sizes, step rules and thread counts.

- MLP 784-W-10 (relu, softmax cross-entropy): W in 64…4096, batch in 1…4096;
- ConvNet: 2 × (conv 3×3 pad 1 with C maps, relu, max-pool 2), dense → 10 on 28×28 images:
  C in 8…128, batch in 32…256;
- SGD (lr 0.05) and Adam (lr 1e-3); 1 and 2 threads (each thread count in its own process, the
  thread settings made before torch, NumPy and JAX load). A worker with fewer threads than the
  machine has cores is also pinned to that many cores (``os.sched_setaffinity``): XLA's CPU
  client runs its own thread pool whatever ``intra_op_parallelism_threads`` says (measured: a
  "1-thread" JAX matmul used 1.9 CPU seconds per second of wall time), so without the pin JAX
  got both cores at the 1-thread points. Each runner's CPU time per wall time is recorded
  (``cpu_per_wall`` in sweep.json) and its largest value printed under each table.

Random data (the same batches for every runner), every runner started from the same weights;
the process keeps freed memory (`optimus.tune_memory`, as bench.py and a training script do);
the first steps' losses are compared with eager's before timing (a mismatch is reported, not
hidden). Timing: runners take turns for ``--rounds`` rounds; the median samples/s is kept.
Writes benchmarks/SWEEP.md (tables), benchmarks/sweep.png (ratios to eager) and sweep.json.

Usage (from the repository root): python benchmarks/sweep.py [--quick]
    python benchmarks/sweep.py --threads 2 --merge  (measure one thread count again)
    python benchmarks/sweep.py --flush-denormal --out benchmarks/SWEEP-ftz.md
(``--flush-denormal``: the PyTorch and optimus runners read denormal floats as zero, as XLA
does by default on the CPU; long runs of small batches reach denormals in Adam's moments and
in unused units' weights, and x86 CPUs compute on them ~100x slower.)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MLP_WIDTHS, MLP_BATCHES = (64, 256, 1024, 4096), (1, 16, 256, 4096)
CONV_MAPS, CONV_BATCHES = (8, 32, 128), (32, 256)
QUICK = {"mlp": ((64, 1024), (16, 1024)), "conv": ((8, 32), (32,))}
RULES = {"sgd": 0.05, "adam": 1e-3}
SEGMENT_S = 0.25
# pause before each timed segment: the previous runner's threads (NumPy's OpenBLAS, XLA's pool)
# spin for a while after their last call and would slow the next runner down (measured on
# seed 002: optimus 1.57 -> 3.3 ms a step right after the NumPy runner without a pause)
SETTLE_S = 0.15


def points(quick: bool) -> list[dict]:
    widths, batches = QUICK["mlp"] if quick else (MLP_WIDTHS, MLP_BATCHES)
    maps, conv_batches = QUICK["conv"] if quick else (CONV_MAPS, CONV_BATCHES)
    out = []
    for rule in RULES:
        out += [{"model": "mlp", "size": w, "batch": b, "rule": rule}
                for w in widths for b in batches]
        out += [{"model": "conv", "size": c, "batch": b, "rule": rule}
                for c in maps for b in conv_batches]
    return out


# -- one point, in a worker process --------------------------------------------------------------
def _init(model: str, size: int, seed: int = 0) -> dict:
    import numpy as np
    rng = np.random.RandomState(seed)

    def glorot(shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        fan_out = shape[0] * int(np.prod(shape[2:])) if len(shape) == 4 else shape[1]
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    if model == "mlp":
        shapes = {"hidden": (784, size), "output": (size, 10)}
    else:
        shapes = {"conv0": (size, 1, 3, 3), "conv1": (size, size, 3, 3),
                  "output": (size * 49, 10)}
    params = {}
    for name, shape in shapes.items():
        params[f"{name}.weights"] = glorot(shape)
        params[f"{name}.bias"] = np.zeros(shape[0] if len(shape) == 4 else shape[1], np.float32)
    return params


def _batches(model: str, batch: int, count: int = 4) -> list[dict]:
    import numpy as np
    rng = np.random.RandomState(1)
    shape = (batch, 784) if model == "mlp" else (batch, 1, 28, 28)
    return [{"data": rng.normal(0, 1, shape).astype(np.float32),
             "labels": rng.randint(0, 10, batch).astype(np.int64)} for _ in range(count)]


def _optimus_step(model: str, size: int, rule: str, lr: float, params: dict):
    import optimus
    x = optimus.Input("data", (None, 784) if model == "mlp" else (None, 1, 28, 28))
    y = optimus.Input("labels", (None,), "int64")
    rate = optimus.Input("learning_rate", None)
    if model == "mlp":
        layers = [optimus.Affine("hidden", x.shape, (None, size), act_type="relu")]
    else:
        c0 = optimus.Conv2D("conv0", x.shape, num_filters=size, kernel_size=3, padding=1,
                            act_type="relu")
        p0 = optimus.MaxPool("pool0", c0.output.shape, pool_shape=2)
        c1 = optimus.Conv2D("conv1", p0.output.shape, num_filters=size, kernel_size=3,
                            padding=1, act_type="relu")
        layers = [c0, p0, c1, optimus.MaxPool("pool1", c1.output.shape, pool_shape=2)]
    layers.append(optimus.Affine("output", layers[-1].output.shape, (None, 10),
                                 act_type="linear"))
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    loss = optimus.Output("loss")
    pairs = [(x, layers[0].input)] + [(a.output, b.input) for a, b in zip(layers, layers[1:])]
    pairs += [(layers[-1].output, xent.logits), (y, xent.index), (xent.output, loss)]
    trainable = [p.name for n in layers for p in n.params.values() if p.trainable]
    graph = optimus.Graph("sweep", [x, y, rate], [*layers, xent],
                          optimus.ConnectionManager(pairs).connections, [loss], loss,
                          {"learning_rate": trainable},
                          step_rule=optimus.optim.SGD() if rule == "sgd" else optimus.optim.Adam())
    graph.param_values = params

    def step(batch):
        return float(graph(data=batch["data"], labels=batch["labels"], learning_rate=lr)["loss"])
    return step


def _eager_step(model: str, size: int, rule: str, lr: float, params: dict):
    import torch
    import torch.nn.functional as F
    from torch import nn

    def linear(name):
        w = params[f"{name}.weights"]
        layer = nn.Linear(*w.shape)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w.T.copy()))
            layer.bias.copy_(torch.from_numpy(params[f"{name}.bias"]))
        return layer

    def conv(name):
        w = params[f"{name}.weights"]
        layer = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(params[f"{name}.bias"]))
        return layer

    if model == "mlp":
        net = nn.Sequential(linear("hidden"), nn.ReLU(), linear("output"))
    else:
        net = nn.Sequential(conv("conv0"), nn.ReLU(), nn.MaxPool2d(2), conv("conv1"), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), linear("output"))
    opt = (torch.optim.SGD(net.parameters(), lr=lr) if rule == "sgd"
           else torch.optim.Adam(net.parameters(), lr=lr))

    def step(batch):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(torch.from_numpy(batch["data"])),
                               torch.from_numpy(batch["labels"]))
        loss.backward()
        opt.step()
        return loss.item()
    return step


def _jax_loss(model: str):
    import jax
    import jax_steps

    def loss(p, x, y):
        h = x
        if model == "conv":
            for i in range(2):
                h = jax_steps._max_pool2(jax.nn.relu(jax_steps._conv(
                    h, p[f"conv{i}.weights"], p[f"conv{i}.bias"], ((1, 1), (1, 1)))))
            h = h.reshape(h.shape[0], -1)
        else:
            h = jax.nn.relu(h @ p["hidden.weights"] + p["hidden.bias"])
        return jax_steps._xent(h @ p["output.weights"] + p["output.bias"], y)
    return loss


def run_point(pt: dict, rounds: int) -> dict:
    """samples/s per runner (median over rounds) and the loss check of one grid point."""
    import numpy as np
    import jax_steps
    import numpy_steps
    model, size, batch, rule = pt["model"], pt["size"], pt["batch"], pt["rule"]
    lr, params, batches = RULES[rule], _init(pt["model"], pt["size"]), _batches(model, batch)
    runners = {"eager": _eager_step(model, size, rule, lr, params),
               "optimus": _optimus_step(model, size, rule, lr, params)}
    if jax_steps.available():
        runners["jax"] = jax_steps.runner(_jax_loss(model), params, rule, lr)
    if model == "mlp" and rule == "sgd":
        runners["numpy"] = numpy_steps.mlp_relu_l2(params, lr, 0.0, "hidden", "output")
    check, first = {}, {}
    for kind, step in runners.items():  # the first steps: compile/warm, and compare losses
        start = time.perf_counter()
        losses = [step(b) for b in batches[:3]]
        first[kind] = time.perf_counter() - start
        check[kind] = losses
    ref = np.array(check["eager"])
    diff = {k: float(np.max(np.abs(np.array(v) - ref) / np.maximum(np.abs(ref), 1e-6)))
            for k, v in check.items()}
    steps, start = 1, time.perf_counter()
    while True:  # steps per segment so that eager takes about SEGMENT_S
        start = time.perf_counter()
        for i in range(steps):
            runners["eager"](batches[i % len(batches)])
        elapsed = time.perf_counter() - start
        if elapsed > SEGMENT_S / 4 or steps >= 4096:
            steps = max(2, int(steps * SEGMENT_S / elapsed))
            break
        steps *= 2
    rates, cpu = {k: [] for k in runners}, {k: [] for k in runners}
    kinds = list(runners)
    for r in range(rounds):
        for kind in kinds[r % len(kinds):] + kinds[:r % len(kinds)]:
            time.sleep(SETTLE_S)
            start, start_cpu = time.perf_counter(), time.process_time()
            for i in range(steps):
                runners[kind](batches[i % len(batches)])
            wall = time.perf_counter() - start
            rates[kind].append(steps * batch / wall)
            cpu[kind].append((time.process_time() - start_cpu) / wall)
    return {**pt, "rates": {k: statistics.median(v) for k, v in rates.items()},
            "cpu_per_wall": {k: max(v) for k, v in cpu.items()},
            "loss_rel_diff": diff, "first_call_s": first}


def pin(threads: int) -> None:
    """Restricts this process (and the threads it starts) to ``threads`` of its cores, when it
    may use more: the only limit XLA's CPU thread pool obeys."""
    cores = sorted(os.sched_getaffinity(0))
    if threads < len(cores):
        os.sched_setaffinity(0, cores[:threads])


def worker(threads: int, quick: bool, rounds: int, flush_denormal: bool = False) -> None:
    pin(threads)  # before torch, NumPy and JAX start any thread
    import torch

    import optimus
    optimus.tune_memory()  # as a training script should (README, "Speed"); every runner gains
    torch.set_num_threads(threads)
    if flush_denormal:  # as XLA does by default on the CPU: denormal floats read as zero
        torch.set_flush_denormal(True)
    for pt in points(quick):
        result = run_point(pt, rounds)
        result["threads"] = threads
        print(json.dumps(result), flush=True)


# -- the driver: one worker process per thread count, then tables and the plot -------------------
def _env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                        + ("true" if threads > 1 else "false")
                        + f" intra_op_parallelism_threads={threads}").strip()
    return env


def table(results: list[dict]) -> str:
    kinds = ["optimus", "jax", "numpy"]
    lines = []
    groups = {(r["model"], r["rule"], r["threads"]) for r in results}
    for (model, rule, threads) in sorted(groups, key=lambda g: (g[0] != "mlp", g[1] != "sgd",
                                                                 g[2])):
        rows = [r for r in results if (r["model"], r["rule"], r["threads"]) == (model, rule,
                                                                                 threads)]
        size = "width" if model == "mlp" else "maps"
        lines += [f"### {'MLP 784-W-10' if model == 'mlp' else 'ConvNet'}, {rule.upper()}, "
                  f"{threads} thread{'s' if threads > 1 else ''}", "",
                  f"| {size} | batch | eager samples/s | " + " | ".join(
                      f"{k} / eager" for k in kinds) + " | loss check |",
                  "|---" * (4 + len(kinds)) + "|"]
        for r in rows:
            eager = r["rates"]["eager"]
            cells = [f"{r['rates'][k] / eager:.2f}×" if k in r["rates"] else "—" for k in kinds]
            best = max(r["rates"], key=r["rates"].get)
            cells = [f"**{c}**" if k == best else c for k, c in zip(kinds, cells)]
            worst = max(r["loss_rel_diff"].values())
            lines.append(f"| {r['size']} | {r['batch']} | {eager:,.0f} | " + " | ".join(cells)
                         + f" | {'ok' if worst < 1e-3 else f'differs {worst:.1e}'} |")
        busy = {k: max(r.get("cpu_per_wall", {}).get(k, 0.0) for r in rows)
                for k in ["eager", *kinds] if any(k in r["rates"] for r in rows)}
        if any(busy.values()):  # older sweep.json files lack the record
            lines += ["", "Largest CPU time per wall time (cores busy): " + ", ".join(
                f"{k} {v:.2f}" for k, v in busy.items()) + "."]
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted({(r["threads"], r["model"], r["rule"]) for r in results})
    threads = sorted({p[0] for p in panels})
    cols = sorted({p[1:] for p in panels})
    fig, axes = plt.subplots(len(threads), len(cols), figsize=(4 * len(cols), 3.4 * len(threads)),
                             squeeze=False)
    styles = {"optimus": "-", "jax": "--", "numpy": ":"}
    for i, t in enumerate(threads):
        for j, (model, rule) in enumerate(cols):
            ax = axes[i][j]
            rows = [r for r in results if (r["threads"], r["model"], r["rule"]) == (t, model, rule)]
            sizes = sorted({r["size"] for r in rows})
            colors = plt.cm.viridis([k / max(1, len(sizes) - 1) * 0.85 for k in range(len(sizes))])
            for size, color in zip(sizes, colors):
                pts = sorted((r for r in rows if r["size"] == size), key=lambda r: r["batch"])
                for kind, style in styles.items():
                    xs = [r["batch"] for r in pts if kind in r["rates"]]
                    ys = [r["rates"][kind] / r["rates"]["eager"] for r in pts if kind in r["rates"]]
                    if xs:
                        ax.plot(xs, ys, style, color=color, marker="o", markersize=3,
                                label=f"{kind} {'W' if model == 'mlp' else 'C'}={size}")
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_title(f"{'MLP 784-W-10' if model == 'mlp' else 'ConvNet C maps'}, "
                         f"{rule.upper()}, {t} thread{'s' if t > 1 else ''}", fontsize=9)
            ax.set_xlabel("batch")
            ax.set_ylabel("samples/s ÷ eager PyTorch")
            ax.legend(fontsize=5, ncol=2)
    fig.suptitle("optimus (solid), JAX jit (dashed), NumPy in place (dotted): ratio to eager")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few points, 2 rounds")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--out", default=str(HERE / "SWEEP.md"))
    parser.add_argument("--flush-denormal", action="store_true",
                        help="PyTorch and optimus runners with torch.set_flush_denormal(True)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other thread counts' results from the existing .json")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 3)
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    if args.worker:
        worker(args.worker, args.quick, rounds, args.flush_denormal)
        return
    results, started = [], time.strftime("%Y-%m-%d %H:%M")
    threads = [int(v) for v in args.threads.split(",")]
    out = Path(args.out)
    if args.merge and out.with_suffix(".json").exists():
        results = [r for r in json.loads(out.with_suffix(".json").read_text())
                   if r["threads"] not in threads]
    for t in threads:
        cmd = [sys.executable, __file__, "--worker", str(t), "--rounds", str(rounds)]
        cmd += (["--quick"] if args.quick else []) + (["--flush-denormal"]
                                                        if args.flush_denormal else [])
        proc = subprocess.Popen(cmd, env=_env(t),
                                stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            r = json.loads(line)
            results.append(r)
            print(f"{t} thread(s) {r['model']} {r['size']} batch {r['batch']} {r['rule']}: "
                  + ", ".join(f"{k} {v / r['rates']['eager']:.2f}x"
                              for k, v in r["rates"].items()), flush=True)
        if proc.wait():
            raise SystemExit(f"worker for {t} thread(s) failed")
    results.sort(key=lambda r: r["threads"])
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    png = out.with_name(out.stem.lower() + ".png")
    plot(results, png)
    import torch
    header = ["# Size sweep: training samples/s as the work grows", "",
              f"Measured {started} by `python benchmarks/sweep.py"
              f"{' --quick' if args.quick else ''}"
              f"{' --flush-denormal' if args.flush_denormal else ''}"
              f"{f' --threads {args.threads} --merge' if args.merge else ''}` "
              f"({rounds} round{'s' if rounds > 1 else ''}, median), torch {torch.__version__}, "
              f"{os.cpu_count()} cores. Ratios to the hand-written eager PyTorch loop; the "
              "fastest runner in bold; 'loss check': the first 3 steps' losses against "
              "eager's (relative, < 1e-3 is ok). Plot: "
              f"[{png.name}]({png.name}).", "", ""]
    out.write_text("\n".join(header) + table(results) + "\n")
    print(f"wrote {out}, {png}")


if __name__ == "__main__":
    main()
