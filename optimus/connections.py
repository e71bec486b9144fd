"""`ConnectionManager`: edges as ``(source, sink)`` pairs, turned into ``{source: [sinks]}``."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import GraphError


def endpoint_name(obj: Any) -> str:
    """The wiring name of an Input, Output, Port or Parameter (or a name given as a str)."""
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "name", None)
    if not isinstance(name, str):
        raise GraphError(f"cannot wire {obj!r}: expected an Input, Output, port or parameter")
    return name


class ConnectionManager:
    """Collects ``(source, sink)`` edges; ``connections`` is the map a `Graph` takes.

    Sinks keep the order in which they were given, as the notebook prints them.
    """

    def __init__(self, edges: Iterable[tuple[Any, Any]] = ()):
        self._connections: dict[str, list[str]] = {}
        for edge in edges:
            self.add_edge(*edge)

    def add_edge(self, source: Any, sink: Any) -> None:
        """Connect ``source`` to ``sink``; repeating an edge is harmless."""
        sinks = self._connections.setdefault(endpoint_name(source), [])
        sink_name = endpoint_name(sink)
        if sink_name not in sinks:
            sinks.append(sink_name)

    @property
    def connections(self) -> dict[str, list[str]]:
        """``{source name: [sink names]}``, a fresh copy."""
        return {src: list(sinks) for src, sinks in self._connections.items()}

    def __repr__(self) -> str:
        return f"ConnectionManager({self.connections!r})"
