"""The benchmark harness (`benchmarks/`) measures what it claims: on every seed workload the
optimus graph, the hand-written eager loop (also channels-last for ConvNets) and the NumPy runner
take the same steps from the same weights (timing itself is never asserted)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench  # noqa: E402
import workloads  # noqa: E402


# The hand-written loop wraps seed 001's read-only data views as torch does: with a warning.
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
@pytest.mark.parametrize("name", sorted(workloads.WORKLOADS))
def test_runners_take_the_same_steps(name):
    w = workloads.WORKLOADS[name](count=bench.CHECK_STEPS)
    kinds = bench.kinds_for(w, compiled=False)
    assert kinds[0] == "eager" and "optimus" in kinds
    assert ("numpy" in kinds) == (w.numpy is not None)
    assert ("eager_cl" in kinds) == (w.maps and not w.draws_in_model)
    runners = {kind: bench.make_runner(w, kind)[0] for kind in kinds}
    info = bench.check_and_warm(w, runners)  # raises SystemExit if the losses differ
    losses = np.array(info["optimus"]["losses"])
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]  # the steps train
    # float32 rounding; under autocast, optimus keeps float32 between products, PyTorch bfloat16
    assert max(v["loss_rel_diff"] for v in info.values()) < (1e-5 if w.precision is None
                                                             else 1e-4)
    # optimus normalises channels-last maps as PyTorch's channels-last path does
    assert info["optimus"]["checked_against"] == ("eager_cl" if "batchnorm" in name else "eager")


def test_graph_of_the_benchmark_runs_on_the_fast_path():
    w = workloads.seed002(count=1)
    _, graph = workloads.optimus_runner(w)
    assert graph.engine.name == "fast"
    _, reference = workloads.optimus_runner(w, engine="reference")
    assert reference.engine.name == "reference"


@pytest.mark.parametrize("model,rule", [("mlp", "sgd"), ("mlp", "adam"), ("conv", "adam")])
def test_sweep_runners_take_the_same_steps(model, rule):
    import sweep
    result = sweep.run_point({"model": model, "size": 8, "batch": 4, "rule": rule}, rounds=1)
    expected = {"eager", "optimus", "jax"} | ({"numpy"} if (model, rule) == ("mlp", "sgd")
                                              else set())
    assert set(result["rates"]) == expected
    assert max(result["loss_rel_diff"].values()) < 1e-5
    assert set(result["cpu_per_wall"]) == expected
    assert all(v > 0 for v in result["cpu_per_wall"].values())


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two cores to show")
def test_sweep_worker_is_pinned_to_its_thread_count():
    # in a child process: the pin is process-wide
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); import sweep; sweep.pin(1); "
            "print(len(os.sched_getaffinity(0)))")
    out = subprocess.run([sys.executable, "-c", code, str(BENCHMARKS)], capture_output=True,
                         text=True, check=True).stdout
    assert out.split() == ["1"]


def test_sweep_table_states_the_cores_each_runner_kept_busy():
    import sweep
    row = {"model": "mlp", "size": 8, "batch": 4, "rule": "sgd", "threads": 1,
           "rates": {"eager": 10.0, "optimus": 20.0, "jax": 5.0},
           "cpu_per_wall": {"eager": 1.0, "optimus": 0.99, "jax": 1.9},
           "loss_rel_diff": {"eager": 0.0, "optimus": 0.0, "jax": 0.0}}
    text = sweep.table([row])
    assert "| 8 | 4 | 10 | **2.00×** | 0.50× | — | ok |" in text
    assert "cores busy): eager 1.00, optimus 0.99, jax 1.90." in text


def test_allocations_per_step_counts_the_tensors_a_step_allocates():
    w = workloads.seed002(count=3)
    step, _ = workloads.optimus_runner(w)
    for batch in w.batches:
        step(batch)
    counted = bench.allocations_per_step(step, w.batches, steps=2)
    # at least the hidden activations (256 x 100 float32 = 0.1 MiB) are allocated each step
    assert counted["allocations"] >= 1 and counted["allocated_mib"] >= 0.09
    assert 0.09 <= counted["peak_tensor_mib"] <= 2 * counted["allocated_mib"]
    buffer, one = torch.zeros(1000), torch.ones(())  # (a Python 1.0 would become a tensor)
    idle = bench.allocations_per_step(lambda batch: buffer.add_(one), w.batches, steps=2)
    assert idle == {"allocations": 0.0, "allocated_mib": 0.0, "peak_tensor_mib": 0.0}
    grows = bench.allocations_per_step(lambda batch: torch.ones(2**18), w.batches, steps=2)
    # each step's MiB is freed when the next begins: 1 MiB held at once
    assert grows == {"allocations": 1.0, "allocated_mib": 1.0, "peak_tensor_mib": 1.0}


def test_every_workload_has_a_timing_segment():
    assert set(bench.SEGMENT_S) == set(workloads.WORKLOADS)


def test_scaling_all_reduce_arithmetic():
    import scaling
    # a ring all-reduce sends 2 (N - 1) / N times the bytes: 1.25 MB at 10 Gb/s is 1 ms
    assert scaling.allreduce_ms(1_250_000, 10) == pytest.approx(1.0)
    assert scaling.allreduce_ms(1_250_000, 100, processes=4) == pytest.approx(0.15)


def test_scaling_latency_probe_times_all_reduces_between_two_processes():
    import scaling
    result = scaling.measure_latency(floats=1000, busy_ms=1.0, calls=14)
    assert set(result) == {"median", "p90"}
    assert 0 < result["median"] <= result["p90"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_gpu_benchmark_says_it_needs_cuda():
    import gpu
    with pytest.raises(SystemExit, match="needs a CUDA device"):
        gpu.main([])


def test_inference_layers_splits_both_predictions_into_the_same_parts(capsys):
    """optimus' and ONNX Runtime's profiles of a seed-004 prediction are split into each
    layer's convolution and pooling (found in both, each timed) and the rest of the call."""
    pytest.importorskip("onnxruntime")
    import inference_layers
    results = inference_layers.main(["--rows", "300", "--rounds", "1"])
    assert list(results) == ["optimus graph(**x)", "ONNX Runtime (CPU)"]
    for parts in results.values():
        assert list(parts) == list(inference_layers.PARTS)
        layers = [parts[p] for p in inference_layers.PARTS[:6]]
        assert all(t > 0 for t in layers) and parts["whole call"] > sum(layers)
    assert "| conv1 + relu |" in capsys.readouterr().out
