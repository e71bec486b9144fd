"""One exception hierarchy: every error optimus raises on purpose is an `OptimusError`.

Each class also derives from the builtin a caller would naturally catch (`ValueError`,
`KeyError`, `FileNotFoundError`), so ``except ValueError`` keeps working.
"""


class OptimusError(Exception):
    """Base class of all errors raised by optimus."""


class ConfigError(OptimusError, ValueError):
    """A node, input or step rule was given a bad configuration value.

    ``node`` and ``field`` name the object and the constructor argument at fault, so that a
    loader can report the path in the JSON document (``nodes[2].weight_shape``).
    """

    def __init__(self, message: str, node: str | None = None, field: str | None = None):
        super().__init__(message)
        self.node = node
        self.field = field


class ResourceLimitError(ConfigError):
    """A definition or node asks for more than a resource cap allows (parameter values, input
    ports, shape sizes: `optimus.limits`); refused before anything is allocated."""


class GraphError(OptimusError, ValueError):
    """A graph could not be wired: unknown name, missing source, cycle, bad shape, ..."""


class InputError(OptimusError, ValueError):
    """A graph was called with missing, unknown or badly shaped arrays."""


class ParameterError(OptimusError, ValueError):
    """A parameter value has the wrong shape or dtype."""


class FormatError(OptimusError, ValueError):
    """A saved definition or parameter file is corrupt, truncated or not understood."""


class DataNotFoundError(OptimusError, FileNotFoundError):
    """Dataset files are missing and could not be downloaded."""


class DataFormatError(OptimusError, ValueError):
    """A dataset file exists but does not have the expected format."""


class TrainingError(OptimusError, RuntimeError):
    """Training could not continue (e.g. too many non-finite losses)."""
