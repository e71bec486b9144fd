"""Sparse inputs of dense layers (`optimus.fast.sparse`): a batch that uses few columns of a
wide input is multiplied on them alone, and trains like the reference engine's dense products
(fused SGD with and without folded L2 decay, Adam), dense batches in between included, and
under bfloat16 autocast like the dense bfloat16 products."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import optimus
from optimus.fast import sparse

from .common import assert_same_training, seeded_params, trainer

WIDTH = 1500  # over sparse.MIN_INPUTS


def words(batch: int, steps: int, seed: int = 3, used: int = 12, dense_at=()) -> list[dict]:
    """Bag-of-words batches: each row counts ``used`` words of WIDTH (the step numbers in
    ``dense_at`` get dense rows instead)."""
    rng = np.random.RandomState(seed)
    out = []
    for step in range(steps):
        x = np.zeros((batch, WIDTH), np.float32)
        if step in dense_at:
            x[:] = rng.rand(batch, WIDTH)
        else:
            for row in x:
                row[rng.choice(WIDTH, used, replace=False)] = rng.randint(1, 4, used)
        out.append({"x": x, "y": rng.randint(0, 3, batch).astype(np.int64), "lr": 0.05})
    return out


def bag_of_words(engine, step_rule=None, l2: float = 0.0):
    """x (WIDTH) -> Affine 8 sigmoid -> Affine 3 -> softmax cross-entropy (+ L2 on W1)."""
    x, y = optimus.Input("x", (None, WIDTH)), optimus.Input("y", (None,), "int64")
    hidden = optimus.Affine("hidden", x.shape, (None, 8), "sigmoid")
    out = optimus.Affine("out", hidden.output.shape, (None, 3), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    nodes = [hidden, out, xent]
    pairs = [(x, hidden.input), (hidden.output, out.input), (out.output, xent.logits),
             (y, xent.index)]
    if l2:
        decay = optimus.WeightDecayPenalty("decay", weight=l2)
        total = optimus.Add("total", num_inputs=2)
        nodes += [decay, total]
        pairs += [(hidden.weights, decay.input), (xent.output, total.input_0),
                  (decay.output, total.input_1), (total.output, loss)]
    else:
        pairs.append((xent.output, loss))
    return trainer(engine, nodes, optimus.ConnectionManager(pairs).connections, [loss],
                   [x, y], loss, [hidden, out], step_rule)


@pytest.fixture
def sparse_calls(monkeypatch):
    """Counts the batches the dense kernels found sparse."""
    calls = {"asked": 0, "sparse": 0}
    used_columns = sparse.used_columns

    def counting(x):
        columns = used_columns(x)
        calls["asked"] += 1
        calls["sparse"] += columns is not None
        return columns

    monkeypatch.setattr(sparse, "used_columns", counting)
    return calls


@pytest.mark.parametrize("rule, l2", [("sgd", 0.0), ("sgd", 0.01), ("adam", 0.0)])
def test_sparse_batches_train_like_the_dense_reference(sparse_calls, rule, l2):
    step_rule = optimus.optim.Adam() if rule == "adam" else None
    batches = words(batch=5, steps=6, dense_at=(3,))
    assert_same_training(lambda engine: bag_of_words(engine, step_rule, l2), batches)
    # six training calls on the fast engine, five of them sparse (the reference asks nothing)
    assert sparse_calls == {"asked": 6, "sparse": 5}


def test_rows_of_unused_words_do_not_move_under_plain_sgd():
    fast = bag_of_words("fast")
    fast.param_values = seeded_params(fast)
    before = fast.param_values["hidden.weights"].copy()
    batch = words(batch=4, steps=1)[0]
    fast(**batch)
    moved = np.flatnonzero(np.any(fast.param_values["hidden.weights"] != before, axis=1))
    used = np.flatnonzero(batch["x"].any(axis=0))
    assert set(moved) <= set(used) and len(moved) > 0


def test_a_nan_in_a_sparse_batch_reaches_the_loss_as_in_the_dense_product(sparse_calls):
    batch = words(batch=5, steps=1)[0]
    batch["x"][2, 7] = np.nan
    for engine in ("fast", "reference"):
        graph = bag_of_words(engine)
        assert np.isnan(graph(**{**batch, "lr": 0.0})["loss"])
    assert sparse_calls["sparse"] == 1


def test_used_columns():
    x = torch.zeros(4, 2000)
    x[0, 5], x[2, 1999], x[3, 5] = 1.0, -2.0, 3.0
    assert sparse.used_columns(x).tolist() == [5, 1999]
    x[1, 17] = float("nan")
    assert sparse.used_columns(x).tolist() == [5, 17, 1999]
    assert sparse.used_columns(torch.zeros(0, 2000)) is None  # no rows
    assert sparse.used_columns(torch.rand(4, 2000)) is None  # dense first row
    mostly_zero_first_row = torch.zeros(4, 2000)
    mostly_zero_first_row[1:] = 1.0
    assert sparse.used_columns(mostly_zero_first_row) is None  # dense union
    assert sparse.used_columns(x.to(torch.bfloat16)) is None  # no NumPy dtype: dense


def test_only_wide_inputs_that_need_no_gradient_are_checked(sparse_calls):
    """x (1500) -> Affine 1100 relu -> Affine 3: the second layer's wide input needs a
    gradient and the third's is narrow, so one check a training call (the first layer's)."""
    x, y = optimus.Input("x", (None, WIDTH)), optimus.Input("y", (None,), "int64")
    first = optimus.Affine("first", x.shape, (None, 1100), "relu")
    second = optimus.Affine("second", first.output.shape, (None, 3), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    pairs = [(x, first.input), (first.output, second.input), (second.output, xent.logits),
             (y, xent.index), (xent.output, loss)]
    graph = trainer("fast", [first, second, xent], optimus.ConnectionManager(pairs).connections,
                    [loss], [x, y], loss, [first, second])
    for batch in words(batch=3, steps=2):
        graph(**batch)
    assert sparse_calls == {"asked": 2, "sparse": 2}


def test_frozen_weights_of_a_sparse_layer_stay_put(sparse_calls):
    """The wide layer's learning rate at 0 while the output layer trains: a training call
    whose sparse layer neither steps nor hands on a gradient."""
    x, y = optimus.Input("x", (None, WIDTH)), optimus.Input("y", (None,), "int64")
    rates = [optimus.Input("lr_hidden", None), optimus.Input("lr_out", None)]
    hidden = optimus.Affine("hidden", x.shape, (None, 8), "sigmoid")
    out = optimus.Affine("out", hidden.output.shape, (None, 3), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    pairs = [(x, hidden.input), (hidden.output, out.input), (out.output, xent.logits),
             (y, xent.index), (xent.output, loss)]
    graph = optimus.Graph("g", [x, y, *rates], [hidden, out, xent],
                          optimus.ConnectionManager(pairs).connections, [loss], loss,
                          {"lr_hidden": [hidden.weights.name, hidden.bias.name],
                           "lr_out": [out.weights.name, out.bias.name]}, engine="fast")
    graph.param_values = seeded_params(graph)
    before = graph.param_values
    for batch in words(batch=4, steps=2):
        graph(x=batch["x"], y=batch["y"], lr_hidden=0.0, lr_out=0.5)
    after = graph.param_values
    for name in ("hidden.weights", "hidden.bias"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.array_equal(after["out.weights"], before["out.weights"])
    assert sparse_calls["sparse"] == 2


def test_sparse_gradients_summed_over_a_one_rank_group_are_the_gradients(tmp_path,
                                                                          sparse_calls):
    """Under `optimus.distributed` no update is fused: the sparse layer hands its gradient
    (zero outside the used rows) to the all-reduce, and one rank trains as the process alone."""
    import torch.distributed as dist
    from optimus.distributed import GradientSync

    batches = words(batch=5, steps=3)
    alone = bag_of_words("fast")
    alone.param_values = seeded_params(alone)
    start = alone.param_values
    for batch in batches:
        alone(**batch)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1),
                            rank=0, world_size=1)
    try:
        synced = bag_of_words("fast")
        synced.param_values = start
        sync = GradientSync(synced, bucket_bytes=4096)
        for batch in batches:
            synced(**batch)
        sync.close()
    finally:
        dist.destroy_process_group()
    for name, value in alone.param_values.items():
        np.testing.assert_allclose(synced.param_values[name], value, rtol=1e-6, atol=1e-7,
                                   err_msg=name)
    assert sparse_calls["sparse"] == 6


@pytest.mark.parametrize("rule, l2", [("sgd", 0.0), ("sgd", 0.01), ("adam", 0.0)])
def test_sparse_batches_under_autocast_train_like_the_dense_bfloat16_products(
        sparse_calls, monkeypatch, rule, l2):
    """Under bfloat16 autocast the layer casts only the used rows of W and multiplies the
    same bfloat16 operands as the dense product (the unused columns add zeros); float32 sums
    in another order, so the two agree to bfloat16 rounding, not bit for bit."""
    batches = words(batch=5, steps=6, dense_at=(3,))

    def train(dense: bool) -> tuple[list, dict]:
        with monkeypatch.context() as patch:
            if dense:  # no layer is wide enough to be checked
                patch.setattr(sparse, "MIN_INPUTS", 10 * WIDTH)
            graph = bag_of_words("fast", optimus.optim.Adam() if rule == "adam" else None, l2)
            graph.param_values = seeded_params(graph)
            losses = []
            for batch in batches:
                with torch.autocast("cpu", torch.bfloat16):
                    losses.append(float(graph(**batch)["loss"]))
            return losses, graph.param_values

    start = seeded_params(bag_of_words("fast"))
    (dense_losses, dense), (losses, params) = train(dense=True), train(dense=False)
    assert sparse_calls == {"asked": 6, "sparse": 5}  # the sparse run's calls
    np.testing.assert_allclose(losses, dense_losses, rtol=2e-3)
    for name, value in dense.items():
        moved = value - start[name]
        np.testing.assert_allclose(params[name] - start[name], moved, rtol=0,
                                   atol=0.01 * np.abs(moved).max(), err_msg=name)
