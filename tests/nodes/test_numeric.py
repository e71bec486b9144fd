"""Every node case: forward and gradients match the plain-PyTorch reference on the same weights
and inputs, float64 finite differences agree (gradcheck), and inferred shapes are right."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from optimus import registry

from .cases import CASES, Case

IDS = [c.id for c in CASES]


def build(case: Case):
    return registry.lookup("node", case.type)(name="node", **case.kwargs)


def tensors(case: Case, node, dtype: torch.dtype):
    """Fresh leaf tensors: float inputs and trainable parameters require grad."""
    inputs = {}
    for port, array in case.inputs.items():
        if np.issubdtype(array.dtype, np.integer):
            inputs[port] = torch.tensor(array, dtype=torch.int64)
        else:
            inputs[port] = torch.tensor(array, dtype=dtype, requires_grad=True)
    params = {name: torch.tensor(value, dtype=dtype,
                                 requires_grad=node.params[name].trainable)
              for name, value in case.param_values(node).items()}
    return inputs, params


def call(fn, case: Case):
    if case.random:
        torch.manual_seed(0)
    return fn()


def leaves(*groups):
    return [t for group in groups for t in group.values() if t.requires_grad]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_gradients_match_torch(case):
    node = build(case)
    inputs, params = tensors(case, node, torch.float64)
    ref_inputs, ref_params = tensors(case, node, torch.float64)
    out = call(lambda: node.outputs_of(inputs, params, case.training)["output"], case)
    expected = call(lambda: case.reference(ref_inputs, ref_params), case)
    assert out.dtype == torch.float64
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-9, atol=1e-10)

    cotangent = torch.tensor(np.random.RandomState(0).normal(size=tuple(out.shape)))
    ours, theirs = leaves(inputs, params), leaves(ref_inputs, ref_params)
    assert ours, "every case has something to differentiate"
    grads = torch.autograd.grad((out * cotangent).sum(), ours, allow_unused=True)
    ref_grads = torch.autograd.grad((expected * cotangent).sum(), theirs, allow_unused=True)
    for g, r in zip(grads, ref_grads):
        g = torch.zeros(()) if g is None else g
        r = torch.zeros(()) if r is None else r
        torch.testing.assert_close(g.double(), r.double(), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_forward_matches_torch(case):
    node = build(case)
    inputs, params = tensors(case, node, torch.float32)
    ref_inputs, ref_params = tensors(case, node, torch.float32)
    with torch.no_grad():
        out = call(lambda: node.outputs_of(inputs, params, case.training)["output"], case)
        expected = call(lambda: case.reference(ref_inputs, ref_params), case)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_float64(case):
    node = build(case)
    inputs, params = tensors(case, node, torch.float64)
    wrt = [(group, key) for group in (inputs, params) for key, t in group.items()
           if t.requires_grad]

    def fn(*values):
        args = {"inputs": dict(inputs), "params": dict(params)}
        for (group, key), value in zip(wrt, values):
            args["inputs" if group is inputs else "params"][key] = value
        return call(lambda: node.outputs_of(args["inputs"], args["params"],
                                            case.training)["output"], case)

    values = [group[key].detach().clone().requires_grad_() for group, key in wrt]
    # Large cases (convolutions) check random directions of the Jacobian, not every entry:
    # still finite differences against the analytic gradient, at a fraction of the calls.
    fast = sum(v.numel() for v in values) > 96
    assert torch.autograd.gradcheck(fn, values, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast)


@pytest.mark.parametrize("case", [c for c in CASES if c.fixed_shape],
                         ids=[c.id for c in CASES if c.fixed_shape])
def test_inferred_shapes_match_forward(case):
    node = build(case)
    shapes = {port: a.shape for port, a in case.inputs.items()}
    dtypes = {port: "int64" if np.issubdtype(a.dtype, np.integer) else "float32"
              for port, a in case.inputs.items()}
    inputs, params = tensors(case, node, torch.float32)
    with torch.no_grad():
        out = call(lambda: node.outputs_of(inputs, params, case.training)["output"], case)
    assert node.infer(shapes, dtypes) == {"output": (tuple(out.shape), "float32")}
    declared = node.declared_output_shapes().get("output")
    if declared is not None:  # shapes known at construction agree, batch axis aside
        assert len(declared) == out.dim()
        assert all(d is None or d == o for d, o in zip(declared, out.shape))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_rebuilds_the_same_node(case):
    node = build(case)
    config = node.get_config()
    assert config["name"] == "node"
    clone = type(node)(**config)
    assert clone.get_config() == config
    assert list(clone.inputs) == list(node.inputs)
    assert {k: p.shape for k, p in clone.params.items()} == \
        {k: p.shape for k, p in node.params.items()}
