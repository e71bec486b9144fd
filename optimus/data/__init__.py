"""Data sources for `Driver.fit`: iterables of dicts keyed by a graph's input names."""
from .streams import minibatch

__all__ = ["minibatch"]
