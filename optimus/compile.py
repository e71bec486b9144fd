"""Lowering a wired graph to PyTorch: one `torch.nn.Module` and its training step.

This is the reference path: a straight-line forward over the ordered nodes, differentiated by
autograd, with updates applied by the graph's step rule (a `torch.optim` optimizer).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from .nodes.base import Node
from .ports import Parameter

Tensor = torch.Tensor


@dataclass(frozen=True)
class Step:
    """One node call: where its inputs come from and where its outputs go."""

    node: Node
    sources: tuple[tuple[str, str], ...]  # (input port, value name)
    targets: tuple[tuple[str, str], ...]  # (output port, value name)


class GraphModule(torch.nn.Module):
    """The graph's forward: each node's function called in topological order.

    Parameters are the nodes' own tensors, so modules of graphs that share nodes share them.
    """

    def __init__(self, steps: Sequence[Step], params: Sequence[Parameter],
                 results: Sequence[str]):
        super().__init__()
        self.steps = tuple(steps)
        self.results = tuple(results)
        for param in params:
            self.register_parameter(param.name.replace(".", "__"), param.tensor)
        self._param_values = {p.name: p.tensor for p in params}  # parameters as sources
        self._node_params = [
            (step, {k: p.tensor for k, p in step.node.params.items()}) for step in self.steps]

    def forward(self, inputs: Mapping[str, Tensor], training: bool = False) -> dict[str, Tensor]:
        values = {**self._param_values, **inputs}
        for step, params in self._node_params:
            args = {port: values[name] for port, name in step.sources}
            out = step.node.outputs_of(args, params, training)
            for port, name in step.targets:
                values[name] = out[port]
        return {name: values[name] for name in self.results}


class Trainer:
    """Takes update steps: gradients of the loss by autograd, applied by a torch optimizer.

    Args:
        module: the graph's forward.
        loss: name of the value to minimise.
        groups: ``{learning-rate input name: [parameters]}`` from the graph's ``updates``.
        step_rule: builds the optimizer; one param group per learning-rate input.
    """

    def __init__(self, module: GraphModule, loss: str, groups: Mapping[str, list[Parameter]],
                 step_rule):
        self.module = module
        self.loss = loss
        self.group_names = list(groups)
        self.optimizer = step_rule.build(
            [{"params": [p.tensor for p in params], "lr": 0.0, "name": name}
             for name, params in groups.items()])

    def step(self, inputs: Mapping[str, Tensor], rates: Mapping[str, float]) -> dict[str, Tensor]:
        """Forward in training mode, then move each group by its rate; returns the outputs
        as computed before the update."""
        active = []
        for group in self.optimizer.param_groups:
            group["lr"] = rates[group["name"]]
            if group["lr"] != 0.0:
                active.extend(group["params"])
        with torch.enable_grad():
            values = self.module(inputs, training=True)
            grads = torch.autograd.grad(values[self.loss], active, allow_unused=True)
        for param, grad in zip(active, grads):
            param.grad = torch.zeros_like(param) if grad is None else grad
        self.optimizer.step()
        for param in active:
            param.grad = None
        return {k: v.detach() for k, v in values.items()}
