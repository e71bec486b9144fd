"""Scale-out: samples per second of the seed-002 and seed-004 training workloads on 1 and 2
processes (one thread each) under torchrun, the scaling efficiency
``throughput(2) / (2 * throughput(1))`` (beside a control: two processes training alone on half
batches at the same time, the most these two cores give with nothing exchanged), and what the
gradient all-reduce costs per step between machines at 10 and 100 Gb/s, and what one such
all-reduce takes between the two processes on this machine (gloo, loopback).

    python benchmarks/scaling.py [--steps 60] [--rounds 3] [--workloads seed002 seed004]

The latency probe times bare ``torch.distributed.all_reduce`` calls of the workload's
gradients (and the two numbers that ride with them) between two one-thread processes: back to
back, and after a control step's worth of computation on each rank, as in training, where a
process's threads must wake up for each message.

Each measurement is a fresh ``python -m torch.distributed.run --nproc_per_node=N`` of this
file in worker mode, training the example's own graph with ``Driver.fit`` on MNIST (the
shared data folder; synthetic images of the same shape if it is missing) at the example's
global batch size; the first steps are warm-up, the rest are timed. A global batch is split
between the processes, so two processes each compute half of it. The two control processes
wait for each other after their warm-up (a file barrier), so that their timed steps run at the
same time, as two ranks' do. The three measurements are repeated in turn (``--rounds``): the
medians are reported, and each efficiency is taken per round against that round's own
one-process run, then the median (min-max): on a shared VM one run can be 30 % off another.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 10
#: global batch and step rule of each seed workload (the examples' own)
BATCH = {"seed002": 256, "seed004": 128}


def build(workload: str):
    """The example's trainer, its data and learning rate."""
    import numpy as np

    import optimus
    from optimus.datasets import mnist
    from optimus.examples import seed002_blocks_mlp, seed004_flux_conv
    np.random.seed(0)
    try:
        train, valid, _ = mnist.load()
        images = np.concatenate([train[0], valid[0]])[:20000]
        labels = np.concatenate([train[1], valid[1]])[:20000]
    except optimus.DataNotFoundError:
        images = np.random.RandomState(0).rand(20000, 1, 28, 28).astype("float32")
        labels = np.random.RandomState(1).randint(0, 10, 20000)
    if workload == "seed002":
        graph = seed002_blocks_mlp.build()[0]
        data = {"features": images.reshape(len(images), -1), "targets": labels.astype("int64")}
        rate = 0.1
    else:
        graph = seed004_flux_conv.build()[0]
        data = {"images": images.reshape(len(images), 1, 28, 28),
                "labels": labels.astype("int64")}
        rate = 3e-3
    return graph, data, rate


def barrier(folder: Path, parties: int) -> None:
    """Wait until ``parties`` processes have reached this point (one file each in
    ``folder``)."""
    (folder / f"ready-{os.getpid()}").touch()
    while len(list(folder.glob("ready-*"))) < parties:
        time.sleep(0.001)


def worker(workload: str, steps: int, out: Path, batch: int | None = None,
           wait_for: Path | None = None) -> None:
    """One rank: train ``WARMUP + steps`` steps, time the last ``steps``; ``batch``
    overrides the workload's (the control below: half a batch, no group); ``wait_for``: a
    folder where two control processes meet after their warm-up."""
    import torch

    import optimus
    from optimus.data import DataStream, SequentialScheme
    torch.set_num_threads(1)
    graph, data, rate = build(workload)
    batch = batch or BATCH[workload]
    stream = DataStream(data, SequentialScheme(len(next(iter(data.values()))), batch))
    times: list[float] = []

    class Clock(optimus.Extension):
        def after_batch(self, driver, outputs):
            if wait_for is not None and len(times) == WARMUP - 1:
                barrier(wait_for, 2)
            times.append(time.perf_counter())

    driver = optimus.Driver(graph, extensions=[Clock()], verbose=0)
    driver.fit(stream, {"learning_rate": rate}, max_iter=WARMUP + steps - 1)
    if optimus.distributed.is_main():
        seconds = times[-1] - times[WARMUP - 1]
        params = sum(p.tensor.numel() for p in graph.params.values() if p.trainable)
        out.write_text(json.dumps({
            "samples_per_s": steps * batch / seconds, "params": params,
            "param_bytes": sum(p.tensor.numel() * p.tensor.element_size()
                               for p in graph.params.values() if p.trainable)}))


def latency_worker(floats: int, busy_ms: float, calls: int, out: Path) -> None:
    """One rank of the latency probe: ``calls`` all-reduces of ``floats`` numbers, each after
    ``busy_ms`` of matrix products on this rank (0: back to back); rank 0 writes the median
    and the 90th percentile, in ms, of the calls after the first `WARMUP`."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    buffer, a = torch.zeros(floats), torch.randn(128, 128)
    times = []
    for _ in range(calls):
        deadline = time.perf_counter() + busy_ms / 1000
        while time.perf_counter() < deadline:
            a @ a
        start = time.perf_counter()
        dist.all_reduce(buffer)
        times.append(1000 * (time.perf_counter() - start))
    if dist.get_rank() == 0:
        kept = sorted(times[WARMUP:])
        out.write_text(json.dumps({"median": statistics.median(kept),
                                   "p90": kept[int(0.9 * (len(kept) - 1))]}))
    dist.destroy_process_group()


def _torchrun(processes: int, *args: str) -> dict:
    """This file in a worker mode (``args``) on ``processes`` one-thread processes under
    torchrun; what rank 0 wrote to its ``--out`` file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", __file__, *args, "--out", str(out)]
        subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def measure_latency(floats: int, busy_ms: float, calls: int = 60) -> dict:
    """`latency_worker` on two processes under torchrun: ``{"median": ms, "p90": ms}``."""
    return _torchrun(2, "--latency", str(floats), str(busy_ms), "--steps", str(calls))


def measure(workload: str, processes: int, steps: int) -> dict:
    return _torchrun(processes, "--worker", workload, "--steps", str(steps))


def measure_independent(workload: str, steps: int) -> float:
    """The control: two processes at once, each training alone on half a global batch (no
    process group, nothing exchanged), their timed steps at the same time; their summed
    samples/s is what two cores of this machine give this workload with no communication."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.json" for i in range(2)]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", workload, "--steps",
                                   str(steps), "--out", str(out), "--batch",
                                   str(BATCH[workload] // 2), "--wait-for", tmp], cwd=ROOT,
                                  env=env,
                                  stdout=subprocess.DEVNULL) for out in outs]
        if any(p.wait() for p in procs):
            raise SystemExit("the control's worker failed")
        return sum(json.loads(out.read_text())["samples_per_s"] for out in outs)


def _span(values: list[float], fmt: str = ",.0f") -> str:
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def allreduce_ms(param_bytes: int, gbit_per_s: float, processes: int = 2) -> float:
    """Bandwidth time of a ring all-reduce: each process sends and receives
    ``2 (N - 1) / N`` times the gradient bytes (latency not counted)."""
    sent = 2 * (processes - 1) / processes * param_bytes
    return 1000 * sent * 8 / (gbit_per_s * 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=["seed002", "seed004"])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--wait-for", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--latency", nargs=2, type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency:
        latency_worker(int(args.latency[0]), args.latency[1], args.steps, Path(args.out))
        return
    if args.worker:
        worker(args.worker, args.steps, Path(args.out), args.batch,
               Path(args.wait_for) if args.wait_for else None)
        return
    for workload in args.workloads:
        ones, twos, alones = [], [], []
        for _ in range(args.rounds):  # in turn, so that a slow spell of the VM hits all three
            one = measure(workload, 1, args.steps)
            ones.append(one["samples_per_s"])
            twos.append(measure(workload, 2, args.steps)["samples_per_s"])
            alones.append(measure_independent(workload, args.steps))
        one_rate, two_rate, alone = (statistics.median(r) for r in (ones, twos, alones))
        # efficiency per round (its own 1-process run as the base), then the median: a slow
        # spell of the VM then moves both sides of a ratio
        eff = [t / (2 * o) for t, o in zip(twos, ones)]
        ctl = [a / (2 * o) for a, o in zip(alones, ones)]
        mb = one["param_bytes"] / 1e6
        step_ms = 1000 * BATCH[workload] / one_rate
        print(f"{workload}: batch {BATCH[workload]}, {one['params']:,} parameters "
              f"({mb:.3f} MB of float32 gradients per step); medians of {args.rounds} rounds "
              f"(min-max)")
        print(f"  1 process : {one_rate:8,.0f} samples/s ({_span(ones)}; {step_ms:.2f} ms per "
              f"step)")
        print(f"  2 processes: {two_rate:8,.0f} samples/s ({_span(twos)}); efficiency "
              f"{statistics.median(eff):.2f} ({_span(eff, '.2f')})")
        print(f"  control, 2 processes alone on half batches at the same time (nothing "
              f"exchanged): {alone:8,.0f} samples/s ({_span(alones)}); efficiency "
              f"{statistics.median(ctl):.2f} ({_span(ctl, '.2f')})")
        for rate in (10, 100):
            ms = allreduce_ms(one["param_bytes"], rate)
            print(f"  all-reduce over 2 machines at {rate} Gb/s: {ms:.3f} ms per step "
                  f"({100 * ms / step_ms:.1f}% of a 1-process step)")
        busy = 1000 * BATCH[workload] / alone  # a control process's step (half a batch)
        idle, loaded = (measure_latency(one["params"] + 2, ms) for ms in (0.0, busy))
        print(f"  one all-reduce of its gradients between these 2 processes (gloo, loopback): "
              f"median {idle['median']:.2f} ms (p90 {idle['p90']:.2f}) back to back, "
              f"{loaded['median']:.2f} ms (p90 {loaded['p90']:.2f}) after {busy:.1f} ms of "
              f"work on each rank")


if __name__ == "__main__":
    main()
