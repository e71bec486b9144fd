"""Optional dependencies: import one where a feature needs it, or say which extra installs it.

``import optimus`` needs only torch and numpy; ONNX export, schema validation, drawing and
TensorBoard logging import their packages when first used, through `require`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import OptimusError

DISTRIBUTION = "optimus-nn"  # the name on the package index (`optimus` is another project)


class MissingDependencyError(OptimusError, ImportError):
    """An optional package a feature needs is not installed; the message names the
    ``pip install`` command that adds it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise `MissingDependencyError` naming the
    command that installs the optional ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{feature} needs the '{module.split('.')[0]}' package ({err}); install it with: "
            f"python -m pip install \"{DISTRIBUTION}[{extra}]\"") from None
