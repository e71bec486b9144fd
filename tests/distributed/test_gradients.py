"""Gradient summing in this process, in a one-rank gloo group: the bucketed all-reduce of
the fast engine (launched during the backward pass) and the reference engine's optimizer hook
hand the optimizer exactly the gradients it would get alone, and detach cleanly."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

import optimus
from optimus.distributed import GradientSync, buckets
from optimus.fast.reduce import ready_steps
from tests.distributed import cases


@pytest.fixture
def one_rank_group(tmp_path):
    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1),
                            rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def steps(graph: optimus.Graph, count: int = 3) -> dict[str, np.ndarray]:
    x, y = cases.conv_data()
    for i in range(count):
        graph(data=x[i * 7:(i + 1) * 7], labels=y[i * 7:(i + 1) * 7], learning_rate=0.01)
    return graph.param_values


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_summed_gradients_over_one_rank_are_the_gradients(one_rank_group, engine):
    alone = steps(cases.convnet(engine, "adam"))
    graph = cases.convnet(engine, "adam")
    sync = GradientSync(graph, bucket_bytes=4096)  # several buckets
    launches = []
    if engine == "fast":
        original = graph.engine.grad_sync.schedule

        def spy(program, plan):
            schedule = original(program, plan)
            launch = schedule.after_step

            def after_step(index, g, weight):
                if schedule.launch_after.get(index):
                    launches.append((index, len(plan.backward)))
                launch(index, g, weight)
            schedule.after_step = after_step
            return schedule
        graph.engine.grad_sync.schedule = spy
    synced = steps(graph)
    for name in alone:
        np.testing.assert_array_equal(synced[name], alone[name], err_msg=name)
    if engine == "fast":  # the last layers' buckets leave before the backward pass ends
        assert launches and min(index for index, _ in launches) < launches[0][1] - 1
    sync.close()
    assert getattr(graph.engine, "grad_sync", None) is None
    assert not graph.optimizer._optimizer_step_pre_hooks


def test_each_gradient_is_ready_after_its_first_layer_kernel():
    graph = cases.convnet("fast", "sgd")
    engine = graph.engine
    plan = engine._training_plan((1,))
    ready = ready_steps(engine.program, plan)
    by_name = {engine.program.slot[name]: name for name in graph.params}
    order = sorted(ready, key=ready.get)
    names = [by_name[slot] for slot in order]
    # the classifier's gradients are final first, the convolution's last
    assert names.index("classifier.weights") < names.index("affine.weights") \
        < names.index("conv.weights")
    assert max(ready.values()) == len(plan.backward) - 1


class Unfinished:
    """A collective that never completes by itself: ``wait`` is what ends it."""

    def __init__(self):
        self.polls = 0
        self.waited = False

    def is_completed(self) -> bool:
        self.polls += 1
        return False

    def wait(self) -> bool:
        self.waited = True
        return True


def test_a_bucket_polls_a_cpu_sum_for_a_while_then_blocks(monkeypatch):
    monkeypatch.setattr(buckets, "SPIN_SECONDS", 0.01)
    bucket = buckets.Bucket([torch.ones(3)])
    bucket._work = work = Unfinished()
    start = time.perf_counter()
    assert len(bucket.wait()) == 1
    assert work.waited and work.polls > 1
    assert 0.01 <= time.perf_counter() - start  # no blocking wait before the polling ends
    assert bucket._work is None and bucket.wait() is bucket.views  # nothing left to wait for
