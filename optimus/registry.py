"""Type name -> class, for nodes and step rules: the only way `load` turns a JSON ``type`` into
code. Nothing is imported or evaluated by name from a file."""
from __future__ import annotations

import difflib

from .errors import ConfigError

_REGISTRIES: dict[str, dict[str, type]] = {"node": {}, "step_rule": {}}


def register(kind: str, cls: type, name: str | None = None) -> type:
    """Record ``cls`` under ``name`` (default: its class name); a second class of the same
    name is an error, since loading would become ambiguous."""
    name = name or cls.__name__
    table = _REGISTRIES[kind]
    if name in table and table[name] is not cls:
        raise ConfigError(
            f"A {kind} type named '{name}' is already registered ({table[name].__module__}); "
            f"choose another class name.")
    table[name] = cls
    return cls


def lookup(kind: str, name: str) -> type:
    """The class registered under ``name``; a KeyError lists the closest known names."""
    table = _REGISTRIES[kind]
    if name not in table:
        close = difflib.get_close_matches(str(name), table, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown {kind} type {name!r}.{hint}")
    return table[name]


def registered(kind: str = "node") -> dict[str, type]:
    """A copy of the registry: ``{type name: class}``."""
    return dict(_REGISTRIES[kind])
