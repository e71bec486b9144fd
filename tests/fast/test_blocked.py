"""Inference through chains of convolutions on oneDNN's blocked maps (`optimus.fast.blocked`):
which convolutions the plan puts there, and that their results are the dense path's (the
reference engine's and plain PyTorch's on the same weights) to float rounding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import optimus
from optimus.fast import blocked

from .common import seeded_params, trainer

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="this torch build has no oneDNN: nothing runs blocked")


def predictor(engine="fast", channels=1, acts=("relu", "relu", "linear"), pools=(2, 2, 2),
              size=15, pool_node=None, tap=None, stride=1, maps=(10, 11, 12), chunk_size="auto"):
    """x -> len(acts) x (Conv3D 3x3 with ``maps[i]`` maps, pad 1, pooling ``pools[i]``) ->
    Affine -> Output 'y' (and the maps of conv ``tap`` as Output 'maps'). ``pool_node``:
    MaxPool options; the pooling is then a MaxPool node after each convolution. With the
    default maps, only the input has few enough channels to start a chain."""
    x = optimus.Input("x", (None, channels, size, size))
    nodes, edges, source, shape = [], [], x, x.shape
    for i, (act, pool) in enumerate(zip(acts, pools)):
        fused = (pool, pool) if pool_node is None else (1, 1)
        conv = optimus.Conv3D(f"conv{i}", shape, (maps[i], None, 3, 3), pool_shape=fused,
                              padding=1, stride=stride if i == 0 else 1, act_type=act)
        nodes.append(conv)
        edges.append((source, conv.input))
        source, shape = conv.output, conv.output.shape
        if pool_node is not None:
            pooling = optimus.MaxPool(f"pool{i}", shape, **pool_node)
            nodes.append(pooling)
            edges.append((source, pooling.input))
            source, shape = pooling.output, pooling.output.shape
    dense = optimus.Affine("dense", shape, (None, 3), "linear")
    y = optimus.Output("y")
    nodes.append(dense)
    edges += [(source, dense.input), (dense.output, y)]
    outputs = [y]
    if tap is not None:
        tapped = optimus.Output("maps")
        edges.append((nodes[tap].output, tapped))
        outputs.append(tapped)
    return optimus.Graph("predictor", [x], nodes,
                         optimus.ConnectionManager(edges).connections, outputs, engine=engine,
                         chunk_size=chunk_size)


def pair(**options):
    fast, ref = predictor("fast", **options), predictor("reference", **options)
    values = seeded_params(fast)
    fast.param_values, ref.param_values = values, values
    return fast, ref


def modes(graph):
    """Each inference kernel's (blocked input, blocked output), None where dense."""
    return [getattr(k, "blocked", None) for k, _ in graph.engine._inference.forward]


def rows(n, channels=1, size=15, seed=0):
    return np.random.RandomState(seed).randn(n, channels, size, size).astype(np.float32)


def assert_same_inference(fast, ref, x):
    a, b = fast(x=x), ref(x=x)
    assert list(a) == list(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("options", [{}, {"channels": 3}, {"channels": 8},
                                     {"pool_node": {"pool_shape": 2}}, {"stride": 2},
                                     {"pools": (2, 1, 2)}, {"acts": ("linear", "relu", "relu")},
                                     {"size": 28, "pools": (2, 2, 2)}])
def test_a_chain_from_few_channels_runs_blocked_and_agrees_with_the_reference(options):
    fast, ref = pair(**options)  # a MaxPool node after a convolution is fused into it
    assert modes(fast) == [(False, True), (True, True), (True, False), None]
    assert_same_inference(fast, ref, rows(7, options.get("channels", 1), options.get("size", 15)))


def test_a_convolution_fed_dense_maps_of_few_channels_starts_a_chain():
    # conv1 (tanh) hands dense maps to conv2: with 5 channels, conv2 starts a chain of its own
    options = {"acts": ("relu", "tanh", "relu"), "maps": (4, 5, 6)}
    fast, ref = pair(**options)
    assert modes(fast) == [(False, False), None, (False, False), None]
    assert kernels(fast)[2].bound is not None
    assert_same_inference(fast, ref, rows(3))


def test_the_result_matches_plain_pytorch_on_the_same_weights():
    fast, _ = pair(acts=("relu", "relu"), pools=(2, 2))
    p = {k: torch.from_numpy(v) for k, v in fast.param_values.items()}
    x = rows(5)
    h = torch.from_numpy(x)
    for i in range(2):
        h = F.max_pool2d(F.relu(F.conv2d(h, p[f"conv{i}.weights"], p[f"conv{i}.bias"],
                                         padding=1)), 2)
    expected = h.flatten(1) @ p["dense.weights"] + p["dense.bias"]
    np.testing.assert_allclose(fast(x=x)["y"], expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options, expected", [
    # the maps of conv1 are a result: conv1 hands dense maps on, so conv2 starts dense
    ({"tap": 1}, [(False, True), (True, False), None, None]),
    # more input channels than blocked.FEW_CHANNELS: nothing starts a chain
    ({"channels": 12}, [None, None, None, None]),
    # tanh is not applied on blocked maps: conv1 stays dense, and so does conv2
    ({"acts": ("relu", "tanh", "relu")}, [(False, False), None, None, None]),
    # an overlapping MaxPool (not fused) between the convolutions
    ({"pool_node": {"pool_shape": 3, "stride": 2}, "size": 28},
     [(False, False), None, None, None, None, None, None]),
])
def test_what_stays_dense(options, expected):
    fast, ref = pair(**options)
    assert modes(fast) == expected
    x = rows(4, channels=options.get("channels", 1), size=options.get("size", 15))
    assert_same_inference(fast, ref, x)


def test_float64_maps_take_the_dense_path():
    """Parameters made float64 after the plan was built: the kernels see it and stay dense."""
    fast, ref = pair()
    for param in fast.params.values():
        param.tensor.data = param.tensor.data.double()
    x = rows(4)
    out = fast.engine.infer({"x": torch.from_numpy(x).double()})["dense.output"]
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref(x=x)["y"], rtol=1e-4, atol=1e-5)


def test_training_calls_never_run_blocked():
    x, y = optimus.Input("x", (None, 1, 8, 8)), optimus.Input("y", (None,), "int64")
    conv = optimus.Conv3D("conv", x.shape, (3, None, 3, 3), pool_shape=(2, 2), padding=1)
    dense = optimus.Affine("dense", conv.output.shape, (None, 4), "linear")
    xent, loss = optimus.SoftmaxCrossEntropyLoss("xent"), optimus.Output("loss")
    edges = optimus.ConnectionManager([(x, conv.input), (conv.output, dense.input),
                                       (dense.output, xent.logits), (y, xent.index),
                                       (xent.output, loss)]).connections
    graph = trainer("fast", [conv, dense, xent], edges, [loss], [x, y], loss, [conv, dense])
    batch = {"x": rows(4, size=8), "y": np.arange(4) % 4, "lr": 0.1}
    graph(**batch)
    plan = next(iter(graph.engine._plans.values()))
    assert all(getattr(k, "blocked", None) is None for k, _ in plan.forward)
    assert modes(graph)[0] == (False, False)  # its inference plan does
    assert kernels(graph)[0].bound is not None


def test_the_predictor_of_a_trainer_sees_every_update():
    """The seed-004 trainer and its predictor share parameters; Adam updates them in place
    (torch's fused Adam without bumping the tensors' version counters): after every step the
    predictor's blocked chain computes with the new weights, as the reference engine does."""
    from optimus.examples import seed004_flux_conv
    np.random.seed(0)
    trainer, predictor = seed004_flux_conv.build(noise_std=0.0)
    np.random.seed(0)
    _, reference = seed004_flux_conv.build(noise_std=0.0, engine="reference")
    assert modes(predictor)[:3] == [(False, True), (True, True), (True, False)]
    rng = np.random.RandomState(1)
    x = rng.rand(6, 1, 28, 28).astype(np.float32)
    out = next(iter(predictor.outputs))
    for step in range(3):
        trainer(images=rng.rand(8, 1, 28, 28).astype(np.float32),
                labels=rng.randint(0, 10, 8), learning_rate=0.01)
        reference.param_values = predictor.param_values
        np.testing.assert_allclose(predictor(images=x)[out], reference(images=x)[out],
                                   rtol=1e-5, atol=1e-6, err_msg=f"after step {step}")


def test_new_weights_are_used_after_an_update_in_place():
    """Replaced values and in-place changes of the parameters reach the chain."""
    fast, ref = pair()
    x = rows(3)
    assert_same_inference(fast, ref, x)
    values = {k: v * 0.5 for k, v in fast.param_values.items()}
    fast.param_values, ref.param_values = values, values
    assert_same_inference(fast, ref, x)
    for graph in (fast, ref):
        with torch.no_grad():
            graph.params["conv1.weights"].tensor.mul_(-1.0)
    assert_same_inference(fast, ref, x)


def test_zero_rows_and_one_row():
    fast, ref = pair()
    for n in (0, 1):
        out = fast(x=rows(n))["y"]
        assert out.shape == (n, 3)
        np.testing.assert_allclose(out, ref(x=rows(n))["y"], rtol=1e-5, atol=1e-5)


def kernels(graph):
    return [k for k, _ in graph.engine._inference.forward]


@pytest.mark.parametrize("value", [np.nan, np.inf, 1e36])
def test_an_input_that_could_make_nan_takes_the_dense_path(value, monkeypatch):
    """oneDNN's pooling and relu drop NaN, so a chunk with a NaN, an infinity, or values large
    enough to overflow inside the chain runs dense, and its results are the reference's."""
    fast, ref = pair()
    calls = []
    monkeypatch.setattr(blocked, "conv_forward",
                        lambda *a, **k: calls.append(1) or conv_forward(*a, **k))
    x = rows(3)
    fast(x=x)
    assert len(calls) == 3  # a plain chunk runs blocked
    x[1, 0, 7, 7] = value
    out, expected = fast(x=x)["y"], ref(x=x)["y"]
    assert len(calls) == 3  # this one did not
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    if value is np.nan:
        assert np.isnan(out[1]).all() and np.isfinite(out[[0, 2]]).all()


conv_forward = blocked.conv_forward


def test_nan_weights_take_the_dense_path():
    fast, ref = pair()
    values = dict(fast.param_values)
    values["conv2.weights"] = values["conv2.weights"].copy()
    values["conv2.weights"][0, 0, 1, 1] = np.nan
    fast.param_values, ref.param_values = values, values
    x = rows(2)
    out = fast(x=x)["y"]
    assert np.isnan(out).all()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref(x=x)["y"]))


def test_the_bound_follows_the_weights():
    """The weights' part of the bound is read again after `refresh` (each call), not before."""
    fast, _ = pair()
    bound = kernels(fast)[0].bound
    x = torch.from_numpy(rows(2))
    assert bound.admits(x)
    weights = fast.params["conv1.weights"].tensor
    with torch.no_grad():
        weights.mul_(1e30)
    assert bound.admits(x)  # within a call the parameters do not change: not read again
    bound.refresh()
    assert not bound.admits(x)
    with torch.no_grad():
        weights.mul_(1e-30)
    bound.refresh()
    assert bound.admits(x)
    assert not bound.admits(x * 1e30)


def test_a_chunked_call_reads_the_weights_norms_once_and_each_call_again(monkeypatch):
    """The bound's norms are computed before a call's first chunk only; weights changed in
    place between two calls (as an optimizer does) reach the next call's bound."""
    fast, ref = pair(chunk_size=2)
    norms = []
    norm = torch.linalg.vector_norm
    monkeypatch.setattr(torch.linalg, "vector_norm", lambda *a, **k: norms.append(1) or
                        norm(*a, **k))
    calls = []
    monkeypatch.setattr(blocked, "conv_forward",
                        lambda *a, **k: calls.append(1) or conv_forward(*a, **k))
    x = rows(7)  # four chunks
    assert_same_inference(fast, ref, x)
    assert len(calls) == 4 * 3 and len(norms) == 2 * 3  # each layer's weights and bias, once
    for graph in (fast, ref):
        with torch.no_grad():
            graph.params["conv2.weights"].tensor[0, 0, 1, 1] = float("nan")
    out = fast(x=x)["y"]
    assert len(calls) == 4 * 3  # no chunk of the second call ran blocked
    assert np.isnan(out).all() and len(norms) == 4 * 3
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref(x=x)["y"]))


def test_plan_is_empty_without_convolutions():
    x = optimus.Input("x", (None, 4))
    dense = optimus.Affine("dense", x.shape, (None, 2), "relu")
    y = optimus.Output("y")
    graph = optimus.Graph("g", [x], [dense], optimus.ConnectionManager(
        [(x, dense.input), (dense.output, y)]).connections, [y])
    assert blocked.plan(graph.engine.program, {"y"}) == {}
