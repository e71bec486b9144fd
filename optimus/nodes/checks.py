"""Config checks shared by the node families: each raises the node's `ConfigError` naming the
field, so a bad value in a JSON definition is reported at its path (``nodes[2].axis``)."""
from __future__ import annotations

import numbers
import reprlib
from collections.abc import Sequence
from typing import Any

from .. import limits
from .base import Node


def number(node: Node, field: str, value: Any, minimum: float | None = None,
           strict: bool = False, maximum: float | None = None,
           below_max: bool = False) -> float:
    """A real number, optionally bounded: ``> minimum`` when ``strict`` else ``>= minimum``;
    ``< maximum`` when ``below_max`` else ``<= maximum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise node.config_error(field, f"must be a number, got {reprlib.repr(value)}")
    value = float(value)
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise node.config_error(field, f"must be {'>' if strict else '>='} {minimum}, "
                                f"got {reprlib.repr(value)}")
    if maximum is not None and (value >= maximum if below_max else value > maximum):
        raise node.config_error(field, f"must be {'<' if below_max else '<='} {maximum}, "
                                f"got {reprlib.repr(value)}")
    return value


def integer(node: Node, field: str, value: Any, minimum: int | None = None) -> int:
    """An int (not a bool), optionally ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise node.config_error(field, f"must be an int, got {reprlib.repr(value)}")
    if minimum is not None and value < minimum:
        raise node.config_error(field, f"must be >= {minimum}, got {reprlib.repr(value)}")
    return int(value)


def axes(node: Node, field: str, value: Any) -> int | tuple[int, ...] | None:
    """Axes to reduce: None (every axis), an int, or a list of distinct ints."""
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        result = tuple(integer(node, field, a) for a in value)
        if len(set(result)) != len(result):
            raise node.config_error(field, f"repeats an axis: {reprlib.repr(value)}")
        return result
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise node.config_error(field, f"must be None, an int or a list of ints, got {reprlib.repr(value)}")
    return int(value)


def choice(node: Node, field: str, value: Any, options: Sequence[str]) -> str:
    """One of ``options``."""
    if value not in options:
        raise node.config_error(field, f"{reprlib.repr(value)} is unknown; use one of "
                                f"{', '.join(map(repr, options))}")
    return value


def pair(node: Node, field: str, value: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each ``>= minimum`` (a kernel, pool, stride or padding)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    ok = (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                  and minimum <= v <= limits.MAX_DIM for v in value))
    if not ok:
        raise node.config_error(field, f"must be an int or a pair of ints >= {minimum} (and "
                                f"<= {limits.MAX_DIM:,}), got {reprlib.repr(value)}")
    return int(value[0]), int(value[1])


def within(node: Node, field: str, axes: int | tuple[int, ...] | None, port: str = "input"
           ) -> None:
    """Each of ``axes`` (None: none to check) is an axis of the declared shape of ``port``,
    when it is declared."""
    shape = node.inputs[port].shape
    if shape is None or axes is None:
        return
    for axis in (axes,) if isinstance(axes, int) else axes:
        if not -len(shape) <= axis < len(shape):
            raise node.config_error(field, f"{axis} is not an axis of {port}_shape "
                                    f"{tuple(shape)}")
