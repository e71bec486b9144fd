"""Training: the `Driver` loop, its extensions and its statistics."""
from .driver import Driver, Extension
from .stats import Stats

__all__ = ["Driver", "Extension", "Stats"]
