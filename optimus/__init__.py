"""optimus: declarative neural-network graphs, trained fast on PyTorch, saved as plain data."""
__version__ = "0.1.0"

from . import data, nodes, optim, train  # noqa: E402  (registers nodes and step rules)
from .connections import ConnectionManager  # noqa: E402
from .errors import (ConfigError, DataFormatError, DataNotFoundError, FormatError,  # noqa: E402
                     GraphError, InputError, OptimusError, ParameterError, TrainingError)
from .errors import ResourceLimitError  # noqa: E402
from .graph import Graph  # noqa: E402
from .initializers import glorot_uniform_init, random_init, uniform_init  # noqa: E402
from .memory import tune_memory  # noqa: E402
from .nodes import *  # noqa: E402,F401,F403
from .ports import Input, Output, Parameter, Port  # noqa: E402
from .serialize import load, save  # noqa: E402
from .onnx import export_onnx  # noqa: E402
from .drawing import draw  # noqa: E402
from .data import DataStream, SequentialScheme, ShuffledScheme, minibatch  # noqa: E402
from .train import Driver, Extension, Stats, load_checkpoint  # noqa: E402

__all__ = [
    "ConnectionManager", "Graph", "Input", "Output", "Parameter", "Port",
    "Driver", "Extension", "Stats", "load_checkpoint", "minibatch", "DataStream",
    "SequentialScheme", "ShuffledScheme", "data", "optim", "train",
    "random_init", "uniform_init", "glorot_uniform_init", "save", "load", "tune_memory",
    "export_onnx", "draw",
    "OptimusError", "ConfigError", "GraphError", "InputError", "ParameterError",
    "FormatError", "DataNotFoundError", "DataFormatError", "TrainingError",
    "ResourceLimitError",
    *nodes.__all__,
]
