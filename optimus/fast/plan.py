"""Static execution plans: the graph lowered to kernels over numbered value slots.

`lower` maps each node to its kernel: the registered one, else `AutogradKernel` (the node's
own forward, differentiated by autograd). `Program` numbers the lowered (and fused) graph's
values once. From it, `Plan`s
are built for each kind of call and cached by the engine: one for inference, and one per
combination of active / fused param groups for training. A plan knows, before the first call,
which kernels run, which gradients each must produce, which slots die after each backward
step, and which parameters get a fused update; running it is a loop over bound kernels.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..nodes.base import Node
from ..ports import Parameter, Shape
from .autograd import AutogradKernel, param_key
from .kernel import Binding, Kernel, kernel_and_reason


@dataclass
class Op:
    """One kernel application in the lowered graph, on named values."""

    kernel: type[Kernel]
    node: Node
    ins: dict[str, str]  # input port or parameter name (AutogradKernel: "param:<name>") -> value
    outs: dict[str, str]  # output port -> value name
    in_shapes: dict[str, Shape]
    out_shapes: dict[str, Shape]
    options: dict[str, Any] = field(default_factory=dict)

    def differentiable(self) -> frozenset[str]:
        ports = self.kernel.differentiable(self.node)
        return frozenset(p for p in ports if p in self.ins)


def lower(steps: Sequence[Any], shapes: Mapping[str, Shape]
          ) -> tuple[list[Op], dict[str, str]]:
    """One `Op` per node step (a `optimus.compile.Step`), and ``{node name: reason}`` for the
    nodes that no registered kernel covers: those run as an `AutogradKernel`."""
    ops, reasons = [], {}
    for step in steps:
        node = step.node
        ins = dict(step.sources)
        in_shapes = {port: shapes[name] for port, name in step.sources}
        kernel, reason = kernel_and_reason(node, in_shapes)
        clash = sorted(set(node.params) & set(ins))
        if kernel is not None and clash:
            kernel, reason = None, f"parameter {clash[0]!r} has the name of an input port"
        if kernel is None:
            kernel, reasons[node.name] = AutogradKernel, reason
            key = param_key
        else:
            key = str
        for short, param in node.params.items():
            ins[key(short)] = param.name
            in_shapes[key(short)] = param.shape
        outs = dict(step.targets)
        out_shapes = {port: shapes[name] for port, name in step.targets}
        ops.append(Op(kernel, node, ins, outs, in_shapes, out_shapes))
    return ops, reasons


@dataclass
class Plan:
    """Bound kernels for one kind of call.

    Attributes:
        template: the value list a call starts from (parameters in their slots).
        inputs: ``(input name, slot)`` to fill from the call's tensors.
        forward: ``(kernel, slots to release after it)`` in execution order.
        backward: ``(kernel, slots to release after it)`` in reverse order.
        results: ``(value name, slot, is a parameter)``.
        loss: slot of the loss (training plans).
        grads: ``(parameter tensor, slot)`` whose gradient goes to the optimizer.
    """

    template: list
    inputs: tuple[tuple[str, int], ...]
    forward: tuple[tuple[Kernel, tuple[int, ...]], ...]
    backward: tuple[tuple[Kernel, tuple[int, ...]], ...] = ()
    results: tuple[tuple[str, int, bool], ...] = ()
    loss: int | None = None
    grads: tuple[tuple[torch.Tensor, int], ...] = ()


class Program:
    """The lowered, fused graph with every value numbered; builds `Plan`s.

    Args:
        ops: lowered (and fused) ops in execution order.
        inputs: names of the graph's Inputs.
        params: every parameter of the graph, by name.
        results: the value names a call returns.
        loss: the value name of the loss, if the graph trains.
    """

    def __init__(self, ops: list[Op], inputs: Sequence[str], params: Mapping[str, Parameter],
                 results: Sequence[str], loss: str | None):
        self.ops = ops
        self.params = dict(params)
        self.results = list(results)
        self.loss = loss
        self.slot: dict[str, int] = {}
        for name in [*inputs, *params, *(n for op in ops for n in op.outs.values())]:
            self.slot.setdefault(name, len(self.slot))
        self.readers: dict[str, list[tuple[Op, str]]] = {}
        for op in ops:
            for port, name in op.ins.items():
                self.readers.setdefault(name, []).append((op, port))
        self.inputs = tuple((n, self.slot[n]) for n in inputs if n in self.readers
                            or n in self.results)

    # -- plans ------------------------------------------------------------------------------
    def _template(self, size: int) -> list:
        template: list = [None] * size
        for name, param in self.params.items():
            template[self.slot[name]] = param.tensor
        return template

    def _results(self) -> tuple[tuple[str, int, bool], ...]:
        return tuple((n, self.slot[n], n in self.params) for n in dict.fromkeys(self.results))

    def inference(self, options: Mapping[int, dict] | None = None) -> Plan:
        """The plan of a call without update: forward only, each value released after its
        last reader (graph results excepted). ``options``: ``{id(op): kernel options}`` added
        for this plan alone (e.g. `optimus.fast.blocked.plan`'s)."""
        size = [len(self.slot)]
        options = options or {}
        kernels = [op.kernel(self._binding(op, size, frozenset(), {}, saves=False,
                                           options=options.get(id(op))))
                   for op in self.ops]
        last: dict[int, int] = {}
        for i, op in enumerate(self.ops):
            for name in (*op.ins.values(), *op.outs.values()):
                last[self.slot[name]] = i
        keep = {self.slot[n] for n in self.results} | {s for _, s in self.inputs}
        keep |= {self.slot[n] for n in self.params}
        release: list[list[int]] = [[] for _ in self.ops]
        for slot, i in last.items():
            if slot not in keep:
                release[i].append(slot)
        forward = tuple((k, tuple(r)) for k, r in zip(kernels, release))
        return Plan(self._template(size[0]), self.inputs, forward, results=self._results())

    def training(self, active: Mapping[str, int], fusable: Mapping[str, int],
                 dtype: torch.dtype | None = None) -> Plan:
        """The plan of a training call.

        Args:
            active: parameter name -> param-group index, for parameters whose group has a
                non-zero rate in this call.
            fusable: the subset whose group is plain SGD. A parameter read by one kernel that
                can fuse its update, and otherwise only by L2 penalties whose output gradient
                is a constant, is updated inside that kernel (penalties folded in as decay);
                the others go to the optimizer.
            dtype: None, or the lower precision (autocast's) in which the kernels that
                `Kernel.autocasts` compute their products.
        """
        requires = set(active)
        for op in self.ops:
            if any(op.ins[p] in requires for p in op.differentiable()):
                requires.update(op.outs.values())
        useful = {self.loss}
        for op in reversed(self.ops):
            if any(n in useful for n in op.outs.values()):
                useful.update(op.ins[p] for p in op.differentiable())
        needed = requires & useful

        constant = self._constant_grads()
        fused: dict[str, tuple[int, float]] = {}
        folded: set[tuple[int, str]] = set()  # (id(op), port) whose gradient is folded
        for name, group in fusable.items():
            if name not in needed:
                continue
            readers = self.readers.get(name, [])
            owners = [(op, p) for op, p in readers if p in op.kernel.fusable]
            decays = [(op, p, op.kernel.decay(op.node)[p] * constant[op.outs["output"]])
                      for op, p in readers if p in op.kernel.decay(op.node)
                      and op.outs.get("output") in constant]
            if len(owners) == 1 and len(owners) + len(decays) == len(readers):
                fused[name] = (group, sum(k for _, _, k in decays))
                folded.update((id(op), p) for op, p, _ in decays)

        size = [len(self.slot)]
        forward, backward = [], []
        for op in self.ops:
            need = frozenset(p for p in op.differentiable()
                             if op.ins[p] in needed and (id(op), p) not in folded)
            op_fused = {p: fused[n] for p, n in op.ins.items() if n in fused}
            before = size[0]
            options = ({"dtype": dtype, "hands_low": self._hands_low(op)}
                       if dtype is not None and op.kernel.autocasts else None)
            kernel = op.kernel(self._binding(op, size, need, op_fused, saves=True,
                                             options=options))
            forward.append((kernel, ()))
            if need:
                dead = (*(self.slot[n] for n in op.outs.values()), *range(before, size[0]))
                backward.append((kernel, dead))
        backward.reverse()
        grads = tuple((self.params[n].tensor, self.slot[n]) for n in active if n not in fused)
        return Plan(self._template(size[0]), self.inputs, tuple(forward), tuple(backward),
                    self._results(), self.slot[self.loss], grads)

    def _hands_low(self, op: Op) -> bool:
        """Whether an autocasting op may hand its output on in the lower precision: its one
        reader autocasts too (and would cast it anyway), or keeps the low precision
        (`Kernel.keeps_low`) and hands its own output on so, and no value on the way is a
        result of the call."""
        while True:
            outs = list(op.outs.values())
            if len(outs) != 1 or outs[0] in self.results or outs[0] == self.loss:
                return False
            readers = self.readers.get(outs[0], [])
            if len(readers) != 1 or readers[0][1] != "input":
                return False
            op = readers[0][0]
            if op.kernel.autocasts:
                return True
            if not op.kernel.keeps_low:
                return False

    def _constant_grads(self) -> dict[str, float]:
        """Values whose gradient is a constant known now: the loss (1), and what reaches it
        only through kernels that pass the gradient on unchanged (a sum of losses)."""
        constant: dict[str, float] = {self.loss: 1.0}
        for op in reversed(self.ops):
            outs = list(op.outs.values())
            if not op.kernel.passes_grad or len(outs) != 1 or outs[0] not in constant:
                continue
            for port in op.differentiable():
                name = op.ins[port]
                consumers = self.readers[name]
                if all(o.kernel.passes_grad and o.outs.get("output") in constant
                       for o, _ in consumers) and self.slot[name] != self.slot[self.loss]:
                    constant[name] = sum(constant[o.outs["output"]] for o, _ in consumers)
        return constant

    def _binding(self, op: Op, size: list[int], need: frozenset[str], fused: dict[str, int],
                 saves: bool, options: dict | None = None) -> Binding:
        def private() -> int:
            size[0] += 1
            return size[0] - 1

        return Binding(op.node, {p: self.slot[n] for p, n in op.ins.items()},
                       {p: self.slot[n] for p, n in op.outs.items()}, op.in_shapes, need,
                       fused, saves, {**op.options, **options} if options else op.options,
                       private)
