"""Routes measured at first use (`optimus.fast.routes`): the fastest kept, the static rule
unless another is clearly faster, decisions written per machine and read back, so a machine
takes the same routes run after run."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from optimus.fast import blas, routes

from .common import assert_same_training, classifier_batches, seed002


@pytest.fixture
def calibrating(monkeypatch, tmp_path):
    """Calibrate mode with a fresh cache directory and no decisions in memory."""
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(routes, "MODE", "calibrate")
    routes.forget()
    yield tmp_path
    routes.forget()


def scripted(times):
    """Candidates whose measured times are ``times`` (seconds by name)."""
    return {name: (lambda t=t: (lambda: t)) for name, t in times.items()}


@pytest.fixture
def fake_clock(monkeypatch):
    """`_times` gives what each scripted candidate returns, instead of timing it."""
    monkeypatch.setattr(routes, "_times", lambda calls: {n: c() for n, c in calls.items()})


def not_measured(message):
    def fail(calls):
        pytest.fail(message)
    return fail


class Clock:
    """A stand-in for time.perf_counter that the candidates below advance."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_candidates_are_timed_in_interleaved_rounds_and_the_fastest_call_counts(monkeypatch):
    clock, order = Clock(), []
    monkeypatch.setattr(routes.time, "perf_counter", clock)

    def candidate(name, durations):
        durations = iter(durations)

        def call():
            order.append(name)
            clock.now += next(durations)
        return call

    times = routes._times({"a": candidate("a", [0.005, 0.003, 0.001, 0.002]),
                           "b": candidate("b", [0.004, 0.002, 0.002, 0.002]),
                           "c": candidate("c", [0.001, 0.009, 0.008, 0.007])})
    assert order == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert times == pytest.approx({"a": 0.001, "b": 0.002, "c": 0.001})
    # a long product: fewer rounds
    order.clear()
    times = routes._times({"a": candidate("a", [0.05, 0.03, 0.04]),
                           "b": candidate("b", [0.04, 0.05, 0.06])})
    assert order == ["a", "b", "a", "b", "b", "a"]
    assert times == pytest.approx({"a": 0.03, "b": 0.04})


def test_the_fastest_route_replaces_the_static_one_only_by_the_margin(calibrating, fake_clock):
    assert routes.choose("affine", (8, 8, 8), "mkl",
                         scripted({"mkl": 1.0, "onednn": 0.97})) == "mkl"  # 3 %: noise
    assert routes.choose("affine", (8, 8, 9), "mkl",
                         scripted({"mkl": 1.0, "onednn": 0.5})) == "onednn"


def test_a_decision_is_written_and_read_back_without_measuring(calibrating, fake_clock,
                                                               monkeypatch):
    routes.choose("weight_grad", (256, 784, 100), "onednn_t",
                  scripted({"onednn_t": 2.0, "mkl_t": 1.0, "mkl": 1.5}))
    doc = json.loads(routes.cache_path().read_text())
    threads = torch.get_num_threads()
    assert doc["routes"] == [{"op": "weight_grad", "shape": "256x784x100",
                              "threads": threads, "route": "mkl_t"}]
    routes.forget()  # as a new process: the file decides, nothing is timed or even built
    monkeypatch.setattr(routes, "_times", not_measured("measured again"))
    unbuilt = {name: lambda: pytest.fail("operands built") for name in ("onednn_t", "mkl_t")}
    assert routes.choose("weight_grad", (256, 784, 100), "onednn_t", unbuilt) == "mkl_t"


def test_a_route_read_from_the_file_allocates_no_operands(calibrating, monkeypatch):
    x, dz = torch.randn(64, 40), torch.randn(64, 30)
    first = blas.weight_route(x, dz)
    routes.forget()
    monkeypatch.setattr(blas.torch, "randn", lambda *a, **k: pytest.fail("operands made"))
    assert blas.weight_route(x, dz) == first


def test_measuring_a_route_leaves_the_global_random_stream_alone(calibrating):
    """The operands come from a private generator: a run's noise and dropout draws are the
    same whether its routes were measured now or read from the file."""
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    for rows in (64, 96):  # measured: not in the (fresh) file
        blas.weight_route(torch.ones(rows, 40), torch.ones(rows, 30), sgd=True)
        blas.affine(torch.ones(rows, 40), torch.ones(40, 30), torch.zeros(30))
    assert json.loads(routes.cache_path().read_text())["routes"]  # they were measured
    np.testing.assert_array_equal(torch.rand(4).numpy(), expected.numpy())


def test_another_process_takes_the_routes_this_one_wrote(calibrating):
    x = torch.randn(64, 40)
    first = blas.weight_route(x, torch.randn(64, 30))
    code = ("import torch; from optimus.fast import blas; "
            f"torch.set_num_threads({torch.get_num_threads()}); "
            "print(blas.weight_route(torch.randn(64, 40), torch.randn(64, 30)))")
    env = {**os.environ, "OPTIMUS_ROUTES": "calibrate"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [first]


def test_large_products_static_mode_and_other_dtypes_are_not_measured(calibrating,
                                                                       monkeypatch):
    monkeypatch.setattr(routes, "_times", not_measured("measured"))
    big = (routes.MAX_MACS, 2, 1)
    assert routes.choose("affine", big, "onednn", scripted({"mkl": 0.0})) == "onednn"
    monkeypatch.setattr(routes, "MODE", "static")
    assert routes.choose("affine", (8, 8, 8), "mkl", scripted({"onednn": 0.0})) == "mkl"
    monkeypatch.setattr(routes, "MODE", "calibrate")
    x = torch.zeros(256, 784, dtype=torch.float64)
    assert blas.weight_route(x, torch.zeros(256, 100, dtype=torch.float64)) == "mkl"
    assert not routes.cache_path().exists()


def test_an_unwritable_or_damaged_file_only_costs_a_measurement(calibrating, fake_clock,
                                                                 monkeypatch):
    path = routes.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"routes": [{"op": "affine", "shape": 7}]}')
    assert routes.choose("affine", (8, 8, 8), "mkl",
                         scripted({"mkl": 1.0, "onednn": 0.1})) == "onednn"
    assert json.loads(path.read_text())["routes"][0]["route"] == "onednn"  # rewritten
    monkeypatch.setenv("OPTIMUS_CACHE_DIR", str(path))  # a file where a folder should be
    routes.forget()
    assert routes.choose("affine", (8, 8, 8), "mkl",
                         scripted({"mkl": 1.0, "onednn": 0.1})) == "onednn"
    assert routes.choose("affine", (8, 8, 8), "mkl", scripted({})) == "onednn"  # in memory


def test_calibrated_training_matches_the_reference(calibrating):
    """Whatever this machine measures, the measured routes train as the reference does."""
    assert_same_training(seed002, classifier_batches((30,), 4, steps=3, batch=40))
    decided = json.loads(routes.cache_path().read_text())["routes"]
    assert {entry["op"] for entry in decided} >= {"affine", "sgd_weight_step"}  # plain SGD
    assert all(entry["route"] in ("mkl", "mkl_t", "onednn", "onednn_t") for entry in decided)
    np.testing.assert_equal(len(decided), len({(e["op"], e["shape"]) for e in decided}))


def test_a_running_process_never_switches_a_route_it_took(calibrating, fake_clock):
    """Another process's file entries win for new keys, never over a decision in use."""
    threads = torch.get_num_threads()
    assert routes.choose("affine", (8, 8, 8), "mkl",
                         scripted({"mkl": 1.0, "onednn": 0.1})) == "onednn"
    other = {"routes": [{"op": "affine", "shape": s, "threads": threads, "route": "mkl"}
                        for s in ("8x8x8", "9x9x9")]}
    routes.cache_path().write_text(json.dumps(other))  # written meanwhile by another process
    assert routes.choose("affine", (9, 9, 9), "mkl",
                         scripted({"mkl": 1.0, "onednn": 0.1})) == "mkl"  # recorded first
    assert routes.choose("affine", (8, 8, 8), "mkl", scripted({})) == "onednn"  # unchanged
