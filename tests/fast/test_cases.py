"""Every registered kernel against every node case it claims (`tests/nodes/cases.py`).

The kernels are discovered from the registry (`optimus.fast.kernel._KERNELS`); a case is
claimed by a kernel when `kernel_and_reason` gives it for the case's node and input shapes.
For each claimed case:

- in float64, on the kernel level: the kernel, bound in a one-node plan exactly as the fast
  engine binds it (inference plan and training plan), against the reference path's
  computation of the node (its ``forward``, differentiated by autograd): outputs, and the
  gradient of every float input and parameter for a random output gradient;
- in float32, on the graph level: a graph built with ``engine='fast'`` (so the node must run
  on its kernel) against the same graph with ``engine='reference'``.

A registered kernel that no case exercises fails the suite, as does a case whose node type has
a kernel that declines it without a reason. The same kernel-level check runs `AutogradKernel`
(the fallback of nodes without a kernel) on every case.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import optimus
from optimus import registry
from optimus.fast import AutogradKernel
from optimus.fast.autograd import param_key
from optimus.fast.kernel import _KERNELS, kernel_and_reason
from optimus.fast.plan import Op, Program

from ..nodes.cases import CASES, Case


def build(case: Case):
    return registry.lookup("node", case.type)(name="node", **case.kwargs)


def static_shape(array: np.ndarray) -> tuple:
    """The shape a graph knows: the batch axis (first) unknown."""
    return () if array.ndim == 0 else (None, *array.shape[1:])


def in_shapes(case: Case) -> dict:
    return {port: static_shape(a) for port, a in case.inputs.items()}


def claimed() -> list[tuple[Case, type]]:
    """``(case, kernel)`` for every case some registered kernel claims."""
    pairs = []
    for case in CASES:
        kernel, _ = kernel_and_reason(build(case), in_shapes(case))
        if kernel is not None:
            pairs.append((case, kernel))
    return pairs


CLAIMED = claimed()


def test_every_registered_kernel_is_exercised_by_some_case():
    exercised = {kernel for _, kernel in CLAIMED}
    idle = sorted(f"{k.__name__} (for {cls.__name__})" for cls, k in _KERNELS.items()
                  if k not in exercised)
    assert not idle, f"registered kernels that no case of tests/nodes/cases.py exercises: {idle}"
    per_type = {cls.__name__ for cls in _KERNELS}
    assert {case.type for case, _ in CLAIMED} == per_type


def test_a_kernel_that_declines_a_case_says_why():
    for case in CASES:
        node = build(case)
        if type(node) in _KERNELS:
            kernel, reason = kernel_and_reason(node, in_shapes(case))
            assert (kernel is None) == bool(reason), case.id


# -- float64, kernel level ----------------------------------------------------------------------
def leaf(array: np.ndarray, grad: bool = True) -> torch.Tensor:
    if np.issubdtype(array.dtype, np.integer):
        return torch.tensor(array, dtype=torch.int64)
    return torch.tensor(array, dtype=torch.float64, requires_grad=grad)


def reference(case: Case, node, dy: dict[str, torch.Tensor]):
    """The reference path's computation: ``node.outputs_of`` and autograd, in float64."""
    inputs = {p: leaf(a) for p, a in case.inputs.items()}
    params = {k: leaf(v, node.params[k].trainable) for k, v in case.param_values(node).items()}
    if case.random:
        torch.manual_seed(0)
    outs = node.outputs_of(inputs, params, case.training)
    wrt = {**{p: t for p, t in inputs.items() if t.requires_grad},
           **{param_key(k): t for k, t in params.items() if t.requires_grad}}
    used = [p for p in dy if outs[p].requires_grad]
    grads = torch.autograd.grad([outs[p] for p in used], list(wrt.values()),
                                [dy[p] for p in used], allow_unused=True) if used else ()
    return ({p: t.detach() for p, t in outs.items()},
            dict(zip(wrt, grads)) if used else dict.fromkeys(wrt))


def run_kernel(kernel: type, case: Case, node, dy: dict[str, torch.Tensor],
               dtype: torch.dtype | None = None):
    """The kernel bound in one-node plans as `FastEngine` binds it: outputs of the inference
    plan and of the training plan, and the gradients the training plan's backward gives every
    float input and parameter (inputs enter the plan as parameters, so that it asks for
    their gradients). ``dtype``: the training plan's autocast dtype."""
    params = {k: leaf(v, grad=False) for k, v in case.param_values(node).items()}
    keys = {p: p for p in case.inputs}
    keys.update({k: (param_key(k) if kernel is AutogradKernel else k) for k in params})
    values = {p: leaf(a, grad=False) for p, a in case.inputs.items()}
    values.update(params)
    ins = {keys[name]: f"v.{name}" for name in values}
    shapes = {keys[name]: static_shape(np.asarray(t)) if name in case.inputs else tuple(t.shape)
              for name, t in values.items()}
    inferred = node.infer({p: shapes[p] for p in case.inputs},
                          {p: "int64" for p, t in values.items()
                           if p in case.inputs and not t.is_floating_point()})
    outs = {p: f"out.{p}" for p in node.output_names}
    op = Op(kernel, node, ins, outs, shapes, {p: s for p, (s, _) in inferred.items()})
    floats = {f"v.{n}": SimpleNamespace(tensor=t) for n, t in values.items()
              if t.is_floating_point()}
    active = [n for n in floats if n[2:] in case.inputs or node.params[n[2:]].trainable]
    first = next(iter(outs.values()))
    program = Program([op], [f"v.{n}" for n in values if f"v.{n}" not in floats], floats,
                      list(outs.values()), first)

    def forward(plan, training):
        v = plan.template.copy()
        for name, slot in plan.inputs:
            v[slot] = values[name[2:]]
        if case.random:
            torch.manual_seed(0)
        for k, _ in plan.forward:
            k.forward(v, training)
        return v

    v = forward(program.inference(), False)
    inference = {p: v[program.slot[n]] for p, n in outs.items()}
    plan = program.training({n: 0 for n in active}, {}, dtype)
    v = forward(plan, case.training)
    training = {p: v[program.slot[n]] for p, n in outs.items()}
    g = [None] * len(v)
    for port, grad in dy.items():
        g[program.slot[outs[port]]] = grad
    for k, _ in plan.backward:
        k.backward(v, g, [0.0])
    grads = {}
    for name in active:
        grad = g[program.slot[name]]
        short = name[2:]
        key = keys[short]
        grads[key] = None if grad is None else torch.as_tensor(grad).expand(
            values[short].shape)
    return inference, training, grads, op.differentiable()


def output_grads(case: Case) -> dict[str, torch.Tensor]:
    """A random gradient of the first float output (the plan differentiates its first)."""
    expected, _ = reference(case, build(case), {})
    rng = np.random.RandomState(0)
    dy = {p: torch.tensor(rng.normal(size=tuple(t.shape))) for p, t in expected.items()
          if t.is_floating_point()}
    return dict(list(dy.items())[:1])


def check(kernel: type, case: Case):
    dy = output_grads(case)
    expected, ref_grads = reference(case, build(case), dy)
    inference, training, grads, differentiable = run_kernel(kernel, case, build(case), dy)
    if kernel is not AutogradKernel:  # registered kernels bind parameters by short name
        ref_grads = {k.removeprefix(param_key("")): g for k, g in ref_grads.items()}
    for port, value in expected.items():
        assert training[port].dtype == value.dtype, (case.id, port)
        torch.testing.assert_close(training[port], value, rtol=1e-9, atol=1e-10,
                                   msg=lambda m: f"{case.id} {port} (training plan): {m}")
        if not case.training:
            torch.testing.assert_close(inference[port], value, rtol=1e-9, atol=1e-10,
                                       msg=lambda m: f"{case.id} {port} (inference): {m}")
    for key, ref in ref_grads.items():
        ours = grads.get(key)
        if key not in differentiable:  # the kernel gives no gradient: there must be none
            assert ref is None or not ref.abs().max() > 0, (case.id, key)
            continue
        if ref is None:
            assert ours is None or not ours.abs().max() > 0, (case.id, key)
            continue
        assert ours is not None, (case.id, key)
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10,
                                   msg=lambda m: f"{case.id} gradient of {key}: {m}")


@pytest.mark.parametrize("case, kernel", CLAIMED, ids=[c.id for c, _ in CLAIMED])
def test_kernel_matches_the_reference_in_float64(case, kernel):
    check(kernel, case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_autograd_kernel_matches_the_reference_in_float64(case):
    check(AutogradKernel, case)


AUTOCASTS = [(c, k) for c, k in CLAIMED if k.autocasts]


@pytest.mark.parametrize("case, kernel", AUTOCASTS, ids=[c.id for c, _ in AUTOCASTS])
def test_autocasting_kernel_matches_the_reference_to_bfloat16_rounding(case, kernel):
    """The training plan under autocast (`Kernel.autocasts`): outputs and gradients in the
    values' and parameters' dtype (here float64), equal to the float64 reference up to the
    rounding of the products' operands to bfloat16."""
    dy = output_grads(case)
    expected, ref_grads = reference(case, build(case), dy)
    _, training, grads, differentiable = run_kernel(kernel, case, build(case), dy,
                                                    torch.bfloat16)
    ref_grads = {k.removeprefix(param_key("")): g for k, g in ref_grads.items()}

    def close(ours, ref, what):
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        torch.testing.assert_close(ours.double(), ref, rtol=3e-2, atol=3e-2 * scale + 1e-6,
                                   msg=lambda m: f"{case.id} {what} (bfloat16): {m}")

    for port, value in expected.items():
        assert training[port].dtype == value.dtype, (case.id, port)
        close(training[port], value, port)
    assert any(not torch.allclose(training[p], v, rtol=1e-6, atol=0)
               for p, v in expected.items()), f"{case.id}: no bfloat16 product ran"
    for key, ref in ref_grads.items():
        if key in differentiable and ref is not None:
            assert grads[key].dtype == ref.dtype, (case.id, key)
            close(grads[key], ref, f"gradient of {key}")


# -- float32, graph level, engine='fast' forced ------------------------------------------------
def one_node_graph(case: Case, engine: str) -> optimus.Graph:
    node = build(case)
    inputs, connections = [], {}
    for port, array in case.inputs.items():
        dtype = "int64" if np.issubdtype(array.dtype, np.integer) else "float32"
        inputs.append(optimus.Input(f"in_{port}", static_shape(array) or None, dtype))
        connections[f"in_{port}"] = [f"node.{port}"]
    outputs = [optimus.Output(f"out_{p}") for p in node.output_names]
    for p in node.output_names:
        connections[f"node.{p}"] = [f"out_{p}"]
    graph = optimus.Graph("case", inputs, [node], connections, outputs, engine=engine)
    graph.param_values = {f"node.{k}": v for k, v in case.param_values(node).items()}
    return graph


@pytest.mark.parametrize("case, kernel", [(c, k) for c, k in CLAIMED if not c.training],
                         ids=[c.id for c, _ in CLAIMED if not c.training])
def test_fast_graph_matches_the_reference_graph(case, kernel):
    fast, ref = one_node_graph(case, "fast"), one_node_graph(case, "reference")
    assert fast.engines == {"node": "fast"}
    assert [op.kernel for op in fast.engine.program.ops] == [kernel]
    arrays = {f"in_{p}": a for p, a in case.inputs.items()}
    a, b = fast(**arrays), ref(**arrays)
    for key in b:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=case.id)
