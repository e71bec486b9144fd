"""Random draws per row of the global batch (`optimus.draws`): a process computing some rows of
a batch draws, for them, the numbers one process draws for the whole batch."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import optimus
from optimus import draws


def halves(total: int) -> list[tuple[int, int]]:
    """(start, rows) of two ranks' parts, as `optimus.distributed.shard_rows` cuts them."""
    return [(0, total // 2), (total // 2, total - total // 2)]


def test_outside_a_window_a_draw_is_the_plain_draw():
    torch.manual_seed(3)
    expected = torch.randn(5, 4)
    torch.manual_seed(3)
    assert torch.equal(draws.randn_like(torch.zeros(5, 4)), expected)


@pytest.mark.parametrize("total", [7, 8])
def test_the_parts_of_a_batch_are_the_rows_of_the_whole_draw(total):
    torch.manual_seed(0)
    whole = torch.randn(total, 3)
    parts = []
    for start, rows in halves(total):
        torch.manual_seed(0)  # each rank, seeded alike
        with draws.global_rows(start, rows, total):
            parts.append(draws.randn_like(torch.zeros(rows, 3)))
        assert torch.equal(torch.get_rng_state(), _state_after(lambda: torch.randn(total, 3)))
    assert torch.equal(torch.cat(parts), whole)


def _state_after(draw) -> torch.Tensor:
    torch.manual_seed(0)
    draw()
    return torch.get_rng_state()


def test_a_value_without_one_row_per_batch_row_draws_plainly():
    torch.manual_seed(1)
    expected = torch.randn(3, 2)
    torch.manual_seed(1)
    with draws.global_rows(2, 4, 8):
        assert torch.equal(draws.randn_like(torch.zeros(3, 2)), expected)


def test_the_window_closes_and_nests():
    with draws.global_rows(0, 2, 4):
        with draws.global_rows(1, 1, 3):
            assert draws._window.get() == (1, 1, 3)
        assert draws._window.get() == (0, 2, 4)
    assert draws._window.get() is None


def test_another_thread_sees_no_window():
    seen = []
    with draws.global_rows(0, 2, 4):
        thread = threading.Thread(target=lambda: seen.append(draws._window.get()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_a_window_outside_the_batch_is_refused():
    with pytest.raises(ValueError, match=r"rows \[3, 6\) are not inside a batch of 5"):
        with draws.global_rows(3, 3, 5):
            pass


def noisy_graph(engine: str) -> optimus.Graph:
    """x -> GaussianNoise -> Affine(relu) -> Dropout -> Affine -> softmax cross-entropy."""
    np.random.seed(0)
    x = optimus.Input("x", (None, 6))
    y = optimus.Input("y", (None,), "int64")
    lr = optimus.Input("learning_rate", None)
    noise = optimus.GaussianNoise("noise", std=0.5, input_shape=x.shape)
    hidden = optimus.Affine("hidden", noise.output.shape, (None, 8), act_type="relu")
    drop = optimus.Dropout("drop", 0.4, input_shape=hidden.output.shape)
    out = optimus.Affine("out", drop.output.shape, (None, 3), act_type="linear")
    loss = optimus.SoftmaxCrossEntropyLoss("loss")
    cost, logits = optimus.Output("cost"), optimus.Output("logits")
    nodes = [noise, hidden, drop, out, loss]
    pairs = [(x, noise.input), (noise.output, hidden.input), (hidden.output, drop.input),
             (drop.output, out.input), (out.output, loss.logits), (y, loss.index),
             (loss.output, cost), (out.output, logits)]
    graph = optimus.Graph("noisy", [x, y, lr], nodes,
                          optimus.ConnectionManager(pairs).connections, [cost, logits],
                          cost, {"learning_rate": ["hidden.weights", "out.weights"]},
                          engine=engine)
    optimus.random_init(graph.params["hidden.weights"])
    optimus.random_init(graph.params["out.weights"])
    return graph


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_a_training_call_on_part_of_a_batch_sees_the_whole_batchs_noise_and_masks(engine):
    rng = np.random.RandomState(2)
    x, y = rng.rand(9, 6).astype("float32"), rng.randint(0, 3, 9)
    torch.manual_seed(7)
    whole = noisy_graph(engine)(x=x, y=y, learning_rate=0.1)["logits"]
    parts = []
    for start, rows in halves(9):
        torch.manual_seed(7)
        with draws.global_rows(start, rows, 9):
            part = noisy_graph(engine)(x=x[start:start + rows], y=y[start:start + rows],
                                       learning_rate=0.1)["logits"]
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-6, atol=1e-6)


def test_both_engines_draw_the_same_numbers():
    rng = np.random.RandomState(3)
    x, y = rng.rand(8, 6).astype("float32"), rng.randint(0, 3, 8)
    outs = []
    for engine in ("fast", "reference"):
        torch.manual_seed(11)
        outs.append(noisy_graph(engine)(x=x, y=y, learning_rate=0.1)["logits"])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
