"""Losses (and a few nodes with special cases) against answers computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import optimus


def run(node, **inputs):
    tensors = {k: torch.tensor(v, dtype=torch.float64) if isinstance(v, (list, float)) else v
               for k, v in inputs.items()}
    params = {k: p.tensor.detach().double() for k, p in node.params.items()}
    return node.forward(tensors, params)


def approx(value):
    return pytest.approx(value, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("cls", [optimus.NegativeLogLikelihoodLoss,
                                 optimus.NegativeLogLikelihood,
                                 optimus.CategoricalCrossEntropy])
def test_negative_log_likelihood(cls):
    out = run(cls("nll"), likelihoods=[[0.5, 0.5], [0.25, 0.75]], index=torch.tensor([0, 1]))
    assert out.shape == ()
    assert out.item() == approx(-(math.log(0.5) + math.log(0.75)) / 2)


def test_softmax_cross_entropy_closed_form_and_stability():
    node = optimus.SoftmaxCrossEntropyLoss("xent")
    assert run(node, logits=[[0.0, 0.0]], index=torch.tensor([1])).item() == approx(math.log(2))
    out = run(node, logits=[[1000.0, 0.0], [0.0, 0.0]], index=torch.tensor([1, 0]))
    assert out.item() == approx((1000.0 + math.log(1 + math.exp(-1000.0)) + math.log(2)) / 2)
    logits = torch.tensor([[1000.0, -1000.0]], dtype=torch.float32, requires_grad=True)
    loss = node.forward({"logits": logits, "index": torch.tensor([1])}, {})
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad.tolist() == [[1.0, -1.0]]


def test_cross_entropy_is_per_sample_and_the_loss_its_mean():
    eps = 1e-6
    p, t = [[0.8, 0.4], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]]

    def bce(pi, ti):
        return -(ti * math.log((pi + eps) / (1 + eps))
                 + (1 - ti) * math.log((1 - pi + eps) / (1 + eps)))

    rows = [(bce(0.8, 1) + bce(0.4, 0)) / 2, (bce(0.5, 0) + bce(0.5, 1)) / 2]
    per_sample = run(optimus.CrossEntropy("ce"), prediction=p, target=t)
    assert per_sample.tolist() == [approx(r) for r in rows]
    loss = run(optimus.CrossEntropyLoss("cel"), prediction=p, target=t)
    assert loss.shape == () and loss.item() == approx(sum(rows) / 2)


def test_mean_squared_error_sums_per_sample_then_averages():
    out = run(optimus.MeanSquaredError("mse"), prediction=[[1.0, 2.0], [0.0, 0.0]],
              target=[[0.0, 0.0], [3.0, 0.0]])
    assert out.item() == approx((1 + 4 + 9) / 2)
    vec = run(optimus.MeanSquaredError("mse"), prediction=[1.0, 2.0], target=[0.0, 4.0])
    assert vec.item() == approx(5.0)


def test_weight_decay_penalty_config_and_port():
    x = [[1.0, -2.0], [3.0, 4.0]]
    assert run(optimus.WeightDecayPenalty("d", weight=0.5), input=x).item() == approx(15.0)
    ported = optimus.WeightDecayPenalty("d")
    assert list(ported.inputs) == ["input", "weight"]
    assert run(ported, input=x, weight=0.1).item() == approx(3.0)
    assert list(optimus.WeightDecayPenalty("d", weight=0.005).inputs) == ["input"]


def test_weight_decay_penalty_mean_row_norm_is_the_originals():
    # The 2015 library: weight * mean(sqrt(sum(flatten(2)(x) ** 2, axis=-1))).
    x = [[3.0, -4.0], [0.0, 1.0], [6.0, 8.0]]
    node = optimus.WeightDecayPenalty("d", weight=0.5, form="mean_row_norm")
    assert run(node, input=x).item() == approx(0.5 * (5.0 + 1.0 + 10.0) / 3)
    maps = np.arange(24.0).reshape(2, 3, 4)
    assert run(node, input=torch.tensor(maps)).item() == approx(
        0.5 * np.linalg.norm(maps.reshape(2, -1), axis=1).mean())
    assert node.get_config() == {"name": "d", "form": "mean_row_norm", "weight": 0.5}
    # a zero row has a zero (not NaN) gradient
    zero = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    out = node.outputs_of({"input": zero}, {})["output"]
    grad, = torch.autograd.grad(out, zero)
    assert torch.equal(grad, torch.zeros_like(zero))


def test_similarity_margin():
    out = run(optimus.SimilarityMargin("s", sim_margin=1.0, diff_margin=2.0),
              distance=[0.5, 1.5, 3.0, 1.0], equivalence=[1.0, 1.0, 0.0, 0.0])
    # similar: relu(0.5-1)^2=0, relu(1.5-1)^2=0.25; different: relu(2-3)^2=0, relu(2-1)^2=1
    assert out.item() == approx((0 + 0.25 + 0 + 1) / 4)
    node = optimus.SimilarityMargin("s")
    assert list(node.inputs) == ["distance", "equivalence", "sim_margin", "diff_margin"]
    assert run(node, distance=[1.5], equivalence=[0.5], sim_margin=1.0,
               diff_margin=2.0).item() == approx(0.5 * 0.25 + 0.5 * 0.25)


def test_contrastive_margin_filters_zeros():
    kw = dict(cost_sim=[0.5, 2.0, 3.0], cost_diff=[0.0, 5.0, 5.0])
    # sim: relu(c - 1)^2 = [0, 1, 4]; diff: relu(2 - c)^2 = [4, 0, 0]
    filtered = run(optimus.ContrastiveMargin("c", margin_sim=1.0, margin_diff=2.0), **kw)
    assert filtered.item() == approx((1 + 4) / 2 + 4 / 1)
    plain = run(optimus.ContrastiveMargin("c", False, 1.0, 2.0), **kw)
    assert plain.item() == approx(5 / 3 + 4 / 3)
    none = run(optimus.ContrastiveMargin("c", margin_sim=10.0, margin_diff=-1.0), **kw)
    assert none.item() == 0.0  # no positive term: 0 (the original gave NaN)
    ports = optimus.ContrastiveMargin("c")
    assert list(ports.inputs) == ["cost_sim", "cost_diff", "margin_sim", "margin_diff"]


def test_pairwise_rank():
    out = run(optimus.PairwiseRank("r", alpha=2.0, margin=1.0), cost_sim=[1.0, 0.5],
              cost_diff=[3.0, 0.0])
    # relu(3 - 2 + 1)^2 = 4, relu(0 - 1 + 1)^2 = 0
    assert out.item() == approx(2.0)
    assert list(optimus.PairwiseRank("r").inputs) == ["cost_sim", "cost_diff", "alpha", "margin"]


def test_losses_are_scalar_nodes():
    for node, shapes in [
            (optimus.NegativeLogLikelihoodLoss("a"), {"likelihoods": (None, 3), "index": (None,)}),
            (optimus.SoftmaxCrossEntropyLoss("b"), {"logits": (None, 3), "index": (None,)}),
            (optimus.CrossEntropyLoss("c"), {"prediction": (None, 3), "target": (None, 3)}),
            (optimus.MeanSquaredError("d"), {"prediction": (None, 3), "target": (None, 3)}),
            (optimus.WeightDecayPenalty("e", weight=1.0), {"input": (4, 3)})]:
        assert node.infer(shapes, {"index": "int64"})["output"][0] == ()
    assert optimus.CrossEntropy("f").infer({"prediction": (None, 3),
                                            "target": (None, 3)})["output"][0] == (None,)


# -- other nodes' special cases -------------------------------------------------------------------
def test_divide_by_zero_counts_as_one():
    out = run(optimus.Divide("d"), numerator=[2.0, 3.0], denominator=[0.0, 2.0])
    assert out.tolist() == [2.0, 1.5]


def test_normalize_leaves_zero_samples_at_zero_with_a_finite_gradient():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    out = optimus.Normalize("n", scale_factor=10.0).forward({"input": x}, {})
    assert out.tolist() == [[0.0, 0.0], [6.0, 8.0]]
    out.sum().backward()
    assert torch.isfinite(x.grad).all()  # the zero norm counts as 1: the gradient is the scale
    assert x.grad[0].tolist() == [10.0, 10.0]
    dim = optimus.NormalizeDim("nd", axis=0, mode="l1").forward({"input": x.detach()}, {})
    assert dim.tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_not_index_leaves_the_column_out_exactly():
    x = [[-5.0, -3.0, -4.0], [2.0, 9.0, 1.0]]
    index = torch.tensor([1, 1])
    # The original's trick (set the entry to -1) would give -1 for row 0.
    assert run(optimus.MaxNotIndex("m"), input=x, index=index).tolist() == [-4.0, 2.0]
    assert run(optimus.MinNotIndex("m"), input=x, index=index).tolist() == [-5.0, 1.0]
    assert run(optimus.SelectIndex("s"), input=x, index=index).tolist() == [-3.0, 9.0]


def test_slice_gt_keeps_entries_in_order():
    out = run(optimus.SliceGT("g", value=0.5), input=[0.1, 0.9, 0.5, 2.0, -1.0])
    assert out.tolist() == [0.9, 2.0]


def _row_norm_penalty(w):
    return 0.005 * w.norm(dim=1).mean()


@pytest.mark.parametrize("form", ["sum_squares", "mean_row_norm"])
@pytest.mark.parametrize("engine", ["reference", "auto", "fast"])
def test_weight_decay_on_a_parameter_in_a_trainer_graph(engine, form):
    """Seed 002's objective: cross-entropy + 0.005 * sum(W ** 2) (or the original's mean row
    norm), one SGD step, against the same step in plain PyTorch. With plain SGD the fast engine
    folds the sum-of-squares gradient into the fused update (weight decay); the other form it
    differentiates."""
    data = optimus.Input("data", (None, 4))
    labels = optimus.Input("labels", (None,), "int64")
    lr = optimus.Input("learning_rate", None)
    affine = optimus.Affine("affine", (None, 4), (None, 3), "linear")
    xent = optimus.SoftmaxCrossEntropyLoss("xent")
    decay = optimus.WeightDecayPenalty("decay", weight=0.005, form=form)
    total = optimus.Add("total", num_inputs=2)
    loss = optimus.Output("loss")
    edges = optimus.ConnectionManager([
        (data, affine.input), (affine.output, xent.logits), (labels, xent.index),
        (affine.weights, decay.input), (xent.output, total.input_0),
        (decay.output, total.input_1), (total.output, loss)])
    updates = optimus.ConnectionManager([(lr, affine.weights), (lr, affine.bias)])
    graph = optimus.Graph("g", [data, labels, lr], [affine, xent, decay, total],
                          edges.connections, [loss], loss, updates.connections, engine=engine)
    optimus.random_init(affine.weights, 0.0, 1.0, seed=0)
    optimus.random_init(affine.bias, 0.0, 1.0, seed=1)
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, generator=rng)
    y = torch.tensor([0, 2, 1, 1, 0])
    w = torch.tensor(affine.weights.value, requires_grad=True)
    b = torch.tensor(affine.bias.value, requires_grad=True)
    penalty = 0.005 * (w ** 2).sum() if form == "sum_squares" else _row_norm_penalty(w)
    expected = torch.nn.functional.cross_entropy(x @ w + b, y) + penalty
    expected.backward()
    assert graph.engines["decay"] == ("autograd" if engine == "reference" else "fast")
    out = graph(data=x.numpy(), labels=y.numpy(), learning_rate=0.5)
    assert out["loss"] == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(torch.tensor(affine.weights.value), (w - 0.5 * w.grad).detach())
    torch.testing.assert_close(torch.tensor(affine.bias.value), (b - 0.5 * b.grad).detach())
