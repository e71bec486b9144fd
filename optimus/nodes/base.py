"""`Node`: the base of every processing node: named ports, parameters, config and a forward.

A node subclass is small: ``__init__`` checks its config and creates its parameters, and
``forward`` maps input tensors to output tensors with a few lines of `torch.nn.functional`.
Subclassing registers the class under its name so that `optimus.load` can find it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from .. import registry
from ..errors import ConfigError
from ..ports import DTYPES, Parameter, Port, Shape, as_shape, check_name

Tensor = torch.Tensor
_PROBE_BATCHES = (2, 3)  # two batch sizes: an output axis that follows them is the batch axis
# Probed answers of optimus' node types, by what they depend on (`Node._infer_key`): a graph
# of many alike layers, or the same definition loaded again, probes each kind once.
_INFERRED: dict[tuple, dict[str, tuple[Shape, str]]] = {}


def shape_config(input_shape: Any) -> dict[str, Any]:
    """``{'input_shape': input_shape}``, or ``{}`` for None: the config of a node whose
    ``input_shape`` is optional, so that definitions without it are saved as before."""
    return {} if input_shape is None else {"input_shape": input_shape}


def keeps_rows(axes: int | tuple[int, ...] | list[int] | None, shape: Shape | None) -> bool:
    """Whether an operation along ``axes`` of an input of ``shape`` leaves the batch axis 0
    alone: False for None (every axis), for 0, and for a negative axis that is (or, when the
    input's rank is unknown, may be) axis 0."""
    if axes is None:
        return False
    for axis in (axes,) if isinstance(axes, int) else axes:
        if axis < 0:
            if shape is None or len(shape) + axis <= 0:
                return False
        elif axis == 0:
            return False
    return True


class _OutputPort(Port):
    """An output port whose shape is inferred from the node's declared input shapes."""

    def __init__(self, node: "Node", name: str):
        super().__init__(node.name, name)
        self._owner = node

    @property
    def shape(self) -> Shape | None:
        return self._owner.declared_output_shapes().get(self.short_name)

    @shape.setter
    def shape(self, value: Any) -> None:  # set by Port.__init__ only
        pass


class Node:
    """Base class of all nodes.

    A subclass sets the class attributes below where its defaults do not fit.

    Attributes:
        input_names: the names of its input ports (``('input',)`` by default).
        output_names: the names of its output ports (``('output',)`` by default).
        input_dtypes: dtypes of non-float inputs, e.g. ``{'index': 'int64'}``.
        always_rowwise: True for a type that is row-wise (see `rowwise`) whatever its config
            and input shapes; types whose answer depends on them override `rowwise_for`.
        preserves_shape: True for a one-input node whose ``output`` has its ``input``'s shape
            and dtype (elementwise nodes, activations): `infer` then needs no torch call for
            a float32 input (`static_shape_ok` may refuse an input it cannot take).
        index_ports: ``{port: (other port, axis)}``: the integers fed to ``port`` index
            ``axis`` of ``other port`` (class labels index the likelihoods' classes); a call
            checks them against that size before running (`optimus.inputs`).

    A declared shape for input port ``p`` is taken from the config argument ``p_shape``
    (``input_shape`` for the port ``input``), as in the original library.
    """

    input_names: ClassVar[tuple[str, ...]] = ("input",)
    output_names: ClassVar[tuple[str, ...]] = ("output",)
    input_dtypes: ClassVar[dict[str, str]] = {}
    always_rowwise: ClassVar[bool] = False
    index_ports: ClassVar[dict[str, tuple[str, int]]] = {}
    preserves_shape: ClassVar[bool] = False
    _spec: Any = None  # set by the constructor of a node type that has a spec

    def __init_subclass__(cls, register: bool = True, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if register:
            registry.register("node", cls)

    def __init__(self, name: str, **config: Any):
        try:
            self.name = check_name(name, type(self).__name__)
        except ConfigError as err:
            raise ConfigError(str(err), node=None, field="name") from None
        self.config = dict(config)
        self.inputs: dict[str, Port] = {}
        for port in self.input_names:
            declared = config.get(f"{port}_shape")
            shape = None if declared is None else as_shape(declared, name, f"{port}_shape")
            self.inputs[port] = Port(name, port, shape)
        self.outputs: dict[str, Port] = {p: _OutputPort(self, p) for p in self.output_names}
        self.params: dict[str, Parameter] = {}
        self._shape_cache: dict[str, Shape] | None = None
        for port_name, port in (*self.inputs.items(), *self.outputs.items()):
            setattr(self, port_name, port)

    # -- construction helpers -------------------------------------------------------------
    def add_param(self, name: str, shape: Shape, trainable: bool = True) -> Parameter:
        """Create a zero-filled parameter, reachable as ``node.<name>``."""
        param = Parameter(self.name, name, shape, trainable=trainable)
        self.params[name] = param
        setattr(self, name, param)
        self._shape_cache = None
        return param

    def config_error(self, field: str, message: str) -> ConfigError:
        """An error naming this node and the offending constructor argument."""
        return ConfigError(f"{type(self).__name__} '{self.name}': {field} {message}",
                           node=self.name, field=field)

    def get_config(self) -> dict[str, Any]:
        """The constructor kwargs, as JSON-ready values (what `save` writes)."""
        return {"name": self.name, **self.config}

    # -- shapes -----------------------------------------------------------------------------
    def accepts(self, port: str, shape: Shape) -> bool:
        """Whether a source of ``shape`` may feed input ``port`` (checked when wiring)."""
        declared = self.inputs[port].shape
        if declared is None:
            return True
        return len(declared) == len(shape) and all(
            a is None or b is None or a == b for a, b in zip(declared, shape))

    def declared_output_shapes(self) -> dict[str, Shape]:
        """Output shapes from the declared input shapes; empty when some are unknown."""
        if self._shape_cache is None:
            shapes = {p: port.shape for p, port in self.inputs.items()}
            if any(s is None for s in shapes.values()):
                self._shape_cache = {}
            else:
                self._shape_cache = {p: s for p, (s, _) in self.infer(shapes).items()}
        return self._shape_cache

    def infer(self, input_shapes: Mapping[str, Shape],
              input_dtypes: Mapping[str, str] | None = None) -> dict[str, tuple[Shape, str]]:
        """Output ``(shape, dtype)`` per output port, by running forward on shape-only tensors.

        The batch axis (``None``) is probed with two sizes; an output axis that follows them is
        reported as ``None``. A node type that knows its output shapes without computing
        (`static_infer`) skips the probes: shape inference of a long chain of elementwise
        nodes then costs microseconds per node, not milliseconds.
        """
        input_dtypes = dict(input_dtypes or {})
        known = self.static_infer(input_shapes, input_dtypes)
        if known is not None:
            return known
        key = self._infer_key(input_shapes, input_dtypes)
        if key is not None and key in _INFERRED:
            return dict(_INFERRED[key])
        result = self._probe(input_shapes, input_dtypes)
        if key is not None:
            if len(_INFERRED) >= 4096:
                _INFERRED.clear()
            _INFERRED[key] = dict(result)
        return result

    def _infer_key(self, input_shapes: Mapping[str, Shape], input_dtypes: Mapping[str, str]
                   ) -> tuple | None:
        """What `infer`'s answer depends on, for optimus' own node types (their output
        shapes follow from type, config, parameter and input shapes and dtypes); None for
        other classes, which are always probed."""
        cls = type(self)
        if not cls.__module__.startswith("optimus.nodes."):
            return None
        try:
            return (cls, repr(sorted(self.config.items())),
                    tuple(sorted((p, tuple(s)) for p, s in input_shapes.items())),
                    tuple(sorted(input_dtypes.items())),
                    tuple((k, p.shape) for k, p in self.params.items()))
        except TypeError:
            return None

    def _probe(self, input_shapes: Mapping[str, Shape], input_dtypes: dict[str, str]
               ) -> dict[str, tuple[Shape, str]]:
        """`infer` by running forward on meta tensors at two batch sizes."""
        runs = []
        for batch in _PROBE_BATCHES:
            tensors = {}
            for port, shape in input_shapes.items():
                dims = tuple(batch if d is None else d for d in shape)
                dtype = input_dtypes.get(port) or self.input_dtypes.get(port, "float32")
                tensors[port] = torch.zeros(dims, dtype=DTYPES[dtype], device="meta")
            params = {k: torch.zeros(p.shape, device="meta") for k, p in self.params.items()}
            try:
                runs.append(self.outputs_of(tensors, params, training=False))
            except (RuntimeError, ValueError, IndexError, TypeError, AssertionError,
                    OverflowError) as err:
                # torch's shape checks raise all of these (decompositions assert); keep the
                # message's first line: no C++ backtrace reaches the user
                shapes = {p: tuple(s) if s else None for p, s in input_shapes.items()}
                first = str(err).split("Exception raised from", 1)[0].strip().splitlines()
                raise ConfigError(
                    f"{type(self).__name__} '{self.name}' cannot take inputs of shape "
                    f"{shapes}: {first[0][:300] if first else type(err).__name__}",
                    node=self.name, field="input_shape") from None
        result = {}
        for port in self.output_names:
            a, b = runs[0][port], runs[1][port]
            shape = tuple(None if da != db else da for da, db in zip(a.shape, b.shape))
            result[port] = (shape, str(a.dtype).removeprefix("torch."))
        return result

    def static_infer(self, input_shapes: Mapping[str, Shape], input_dtypes: Mapping[str, str]
                     ) -> dict[str, tuple[Shape, str]] | None:
        """`infer`'s answer computed without torch, or None to probe with meta tensors.

        The default serves `preserves_shape` nodes fed float32; a subclass may override it
        for other shape rules (tests check each against the probes).
        """
        if not self.preserves_shape or set(input_shapes) != {"input"}:
            return None
        shape = input_shapes["input"]
        dtype = input_dtypes.get("input") or self.input_dtypes.get("input", "float32")
        if dtype != "float32" or not self.static_shape_ok(shape):
            return None
        return {"output": (tuple(shape), "float32")}

    def static_shape_ok(self, shape: Shape) -> bool:
        """Whether a `preserves_shape` node surely takes an input of ``shape`` (an axis
        option must name one of its axes); if not, `infer` probes and reports the error."""
        return True

    @property
    def spec(self) -> Any:
        """What the node computes: a frozen dataclass of `optimus.nodes.specs`, built from the
        checked config, that both the node's ``forward`` and its fast kernel read; None for
        node types with nothing to describe beyond their type and config."""
        return self._spec

    def training_rows(self, in_shapes: Mapping[str, Shape | None]) -> int:
        """The fewest batch rows a training call must give this node (inputs of these
        shapes); 1 by default, more for a node computing batch statistics."""
        return 1

    # -- row-wise property ------------------------------------------------------------------
    @property
    def rowwise(self) -> bool:
        """Whether, in a call without update, each output row depends only on the same row of
        the inputs and every output keeps the batch axis first: then a batch may be computed
        in chunks of rows and the results concatenated (chunked inference relies on it).

        Judged from the config and the declared input shapes (`rowwise_for`); False when that
        is not enough to be sure (e.g. a negative axis of an input of unknown rank).
        """
        return self.rowwise_for({p: port.shape for p, port in self.inputs.items()})

    def rowwise_for(self, in_shapes: Mapping[str, Shape | None]) -> bool:
        """`rowwise` for inputs of these shapes (``None``: unknown), e.g. the static shapes a
        wired graph knows. Default: the class attribute ``always_rowwise``."""
        return self.always_rowwise

    # -- computation --------------------------------------------------------------------------
    def forward(self, inputs: Mapping[str, Tensor], params: Mapping[str, Tensor],
                training: bool = False) -> Tensor | dict[str, Tensor]:
        """Compute the outputs. Return a tensor for a single ``output`` port, else a dict.

        Args:
            inputs: one tensor per input port.
            params: one tensor per parameter, by short name (``'weights'``).
            training: True in a call that takes an update step (Dropout, noise, BatchNorm).
        """
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def outputs_of(self, inputs: Mapping[str, Tensor], params: Mapping[str, Tensor],
                   training: bool = False) -> dict[str, Tensor]:
        """`forward`, with a single tensor result wrapped as ``{'output': tensor}``."""
        out = self.forward(inputs, params, training)
        return {"output": out} if isinstance(out, Tensor) else out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
