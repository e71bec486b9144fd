"""The JSON Schema (2020-12) of the definition format, generated from the registries.

`generate` builds it from every registered node type and step rule: the fields of each
constructor (required when they have no default, no others allowed), each field's JSON type and
range (`FIELDS`, keyed by field name, with `RANGES` for the few fields whose range depends on the
node type). The package ships the result as ``optimus/definition.schema.json``; a test
regenerates it and compares, so it cannot drift from the code. ``python -m optimus.schema
--write`` rewrites it after a node type changes.

`validate` lists every problem of a definition with its JSON path (``nodes[2].weight_shape``)
through the ``jsonschema`` package (the ``schema`` extra); `optimus.load` checks the same rules
without it, stopping at the first.
"""
from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import registry
from .activations import ACT_TYPES
from .errors import FormatError
from .extras import require
from .nodes.conv import BORDER_MODES
from .nodes.elementwise import NORM_MODES
from .nodes.specs import PENALTY_FORMS
from .ports import DTYPES
from .serialize import FORMAT_VERSION, PLACEMENT_DEFAULTS

SCHEMA_FILE = Path(__file__).with_name("definition.schema.json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# -- field types ------------------------------------------------------------------------------
NULL: dict = {"type": "null"}
INT = {"type": "integer"}
POSITIVE = {"type": "integer", "minimum": 1}
NUMBER = {"type": "number"}
BOOL = {"type": "boolean"}
BATCH_SHAPE = {  # (None, 1, 28, 28): positive ints, the first may be null (the batch)
    "type": "array", "prefixItems": [{"anyOf": [POSITIVE, NULL]}], "items": POSITIVE}
SIZES = {"type": "array", "items": POSITIVE}  # positive ints, no batch axis
AXES = {"type": "array", "items": INT, "uniqueItems": True}


def _pair(minimum: int) -> dict:
    """An int or a pair of ints, each ``>= minimum`` (kernel, pool, stride, padding)."""
    return {"anyOf": [{"type": "integer", "minimum": minimum},
                      {"type": "array", "items": {"type": "integer", "minimum": minimum},
                       "minItems": 2, "maxItems": 2}]}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, NULL]}


def _range(low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False) -> dict:
    schema: dict[str, Any] = {"type": "number"}
    if low is not None:
        schema["exclusiveMinimum" if low_open else "minimum"] = low
    if high is not None:
        schema["exclusiveMaximum" if high_open else "maximum"] = high
    return schema


FIELDS: dict[str, dict] = {  # field name -> its schema, for every node type that has it
    "name": {"type": "string", "minLength": 1, "pattern": r"^[^.]+$"},
    "input_shape": BATCH_SHAPE, "output_shape": BATCH_SHAPE, "shape": SIZES,
    "weight_shape": SIZES, "act_type": {"enum": list(ACT_TYPES)},
    "num_inputs": POSITIVE, "ndim": POSITIVE, "axis": INT, "num_filters": POSITIVE,
    "kernel_size": _pair(1),
    "pool_shape": _pair(1), "downsample_shape": _pair(1), "stride": _pair(1),
    "padding": _pair(0), "border_mode": {"enum": list(BORDER_MODES)},
    "momentum": _range(0.0, 1.0, low_open=True), "epsilon": _range(0.0),
    "rate": _range(0.0, 1.0, high_open=True), "std": _range(0.0),
    "knee": _range(0.0, low_open=True),
    "gain": NUMBER, "exponent": NUMBER, "scale_factor": NUMBER, "value": NUMBER,
    "mode": {"enum": list(NORM_MODES)}, "weight": _range(0.0),
    "form": {"enum": list(PENALTY_FORMS)}, "filter_zeros": BOOL,
    "margin_sim": NUMBER, "margin_diff": NUMBER, "sim_margin": NUMBER, "diff_margin": NUMBER,
    "alpha": NUMBER, "margin": NUMBER, "broadcast": AXES,
    "slices": {"type": "array", "items": {"anyOf": [
        NULL, INT, {"type": "array", "minItems": 1, "maxItems": 3,
                    "items": {"anyOf": [INT, NULL]}}]}},
}
RANGES: dict[tuple[str, str], dict] = {  # (node type, field) -> its schema, where it differs
    ("Dimshuffle", "axes"): {"type": "array", "items": {"anyOf": [INT, {"const": "x"}]}},
    ("Stack", "axes"): AXES,
    ("Conv3D", "weight_shape"): BATCH_SHAPE,
    ("Conv2D", "padding"): {"anyOf": [_pair(0), {"enum": list(BORDER_MODES)}]},
    ("BatchNorm", "epsilon"): _range(0.0, low_open=True),
    ("Sum", "axis"): {"anyOf": [INT, AXES]}, ("Mean", "axis"): {"anyOf": [INT, AXES]},
    ("Max", "axis"): {"anyOf": [INT, AXES]}, ("Min", "axis"): {"anyOf": [INT, AXES]},
    ("L1Magnitude", "axis"): {"anyOf": [INT, AXES]},
    ("L2Magnitude", "axis"): {"anyOf": [INT, AXES]},
}
STEP_RULE_FIELDS: dict[str, dict] = {
    "betas": {"type": "array", "items": _range(0.0, 1.0, high_open=True),
              "minItems": 2, "maxItems": 2},
    "eps": _range(0.0, low_open=True), "weight_decay": _range(0.0), "momentum": _range(0.0),
    "dampening": _range(0.0, 1.0), "alpha": _range(0.0, 1.0), "lr_decay": _range(0.0),
    "initial_accumulator_value": _range(0.0), "nesterov": BOOL, "amsgrad": BOOL,
    "centered": BOOL, "foreach": BOOL, "fused": BOOL,
}


def _field(cls: type, field: str, param: inspect.Parameter, table: Mapping[str, dict]) -> dict:
    schema = RANGES.get((cls.__name__, field)) or table.get(field)
    if schema is None:
        raise KeyError(f"optimus.schema has no type for field '{field}' of {cls.__name__}; "
                       f"add it to FIELDS (or RANGES) and regenerate")
    annotation = str(param.annotation)
    if param.default is None or annotation.endswith("| None") or annotation == "None":
        schema = _nullable(schema)
    return schema


def _object(cls: type, table: Mapping[str, dict], skip: tuple[str, ...] = ()) -> dict:
    """``{"type": <cls name>, field: ...}``: required fields, no others."""
    properties: dict[str, Any] = {"type": {"const": cls.__name__}}
    required = ["type"]
    for field, param in inspect.signature(cls.__init__).parameters.items():
        if field == "self" or field in skip or param.kind in (param.VAR_POSITIONAL,
                                                             param.VAR_KEYWORD):
            continue
        properties[field] = _field(cls, field, param, table)
        if param.default is inspect.Parameter.empty:
            required.append(field)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _dispatch(kind: str, types: Mapping[str, type], table: Mapping[str, dict]) -> dict:
    """A ``type``-tagged object: the type must be registered, then its own fields apply."""
    return {"type": "object", "required": ["type"],
            "properties": {"type": {"enum": sorted(types)}},
            "allOf": [{"if": {"properties": {"type": {"const": name}}},
                       "then": {"$ref": f"#/$defs/{kind}.{name}"}} for name in sorted(types)]}


def generate() -> dict:
    """The schema of the current definition format, from the node and step-rule registries
    (node types of the optimus package only, not user subclasses)."""
    nodes = {n: c for n, c in registry.registered("node").items()
             if c.__module__.startswith("optimus.")}
    rules = {n: c for n, c in registry.registered("step_rule").items()
             if c.__module__.startswith("optimus.")}
    defs: dict[str, Any] = {f"node.{name}": _object(cls, FIELDS)
                            for name, cls in sorted(nodes.items())}
    defs.update({f"step_rule.{name}": _object(cls, STEP_RULE_FIELDS)
                 for name, cls in sorted(rules.items())})
    defs["Input"] = {"type": "object", "required": ["type", "name"],
                     "additionalProperties": False, "properties": {
                         "type": {"const": "Input"}, "name": FIELDS["name"],
                         "shape": _nullable(BATCH_SHAPE), "dtype": {"enum": sorted(DTYPES)}}}
    defs["Output"] = {"type": "object", "required": ["type", "name"],
                      "additionalProperties": False, "properties": {
                          "type": {"const": "Output"}, "name": FIELDS["name"]}}
    defs["node"] = _dispatch("node", nodes, FIELDS)
    defs["step_rule"] = _dispatch("step_rule", rules, STEP_RULE_FIELDS)
    edges = {"type": "object", "additionalProperties": {"type": "array",
                                                        "items": {"type": "string"}}}
    return {
        "$schema": DIALECT,
        "$id": f"urn:optimus-nn:definition:{FORMAT_VERSION}",
        "title": f"optimus graph definition, format_version {FORMAT_VERSION}",
        "description": "A JSON definition as optimus.save writes it (generated by "
                       "python -m optimus.schema; do not edit by hand).",
        "type": "object",
        "required": ["name", "inputs", "nodes", "connections", "outputs"],
        "properties": {
            "type": {"const": "Graph"},
            "format_version": {"type": "integer", "minimum": 0, "maximum": FORMAT_VERSION},
            "optimus_version": {"type": "string"},
            "name": {"type": "string"},
            "inputs": {"type": "array", "items": {"$ref": "#/$defs/Input"}},
            "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            "connections": edges,
            "outputs": {"type": "array", "items": {"$ref": "#/$defs/Output"}},
            "loss": _nullable({"$ref": "#/$defs/Output"}),
            "updates": _nullable(edges),
            "step_rule": {"$ref": "#/$defs/step_rule"},
            "engine": {"type": "string", "enum": ["auto", "fast", "reference"],
                       "default": PLACEMENT_DEFAULTS["engine"]},
            "device": {"type": "string", "default": PLACEMENT_DEFAULTS["device"]},
            "chunk_size": {"anyOf": [POSITIVE, {"const": "auto"}, NULL],
                           "default": PLACEMENT_DEFAULTS["chunk_size"]},
        },
        "$defs": defs,
    }


def schema() -> dict:
    """The schema shipped with the package (``optimus/definition.schema.json``)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Problem:
    """One violation of the schema: where (``nodes[2].weight_shape``; ``(top)`` for the
    document itself) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def json_path(parts: Any) -> str:
    """``['nodes', 2, 'weight_shape']`` as ``nodes[2].weight_shape``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top)"


def _leaves(error: Any) -> list[Any]:
    """The most specific errors under an ``anyOf``/``if-then`` error, deepest path first."""
    if not error.context:
        return [error]
    deepest = max(len(e.absolute_path) for e in error.context)
    if deepest <= len(error.absolute_path):
        return [error]  # no branch got further than the value itself: report the value
    return [leaf for e in error.context if len(e.absolute_path) == deepest
            for leaf in _leaves(e)]


@functools.lru_cache(maxsize=None)
def _validator(part: str = "") -> Any:
    """A validator of the shipped schema (``part`` ''), or of one of its ``$defs`` (``part``
    'node.Affine'), or ('shallow') of the schema with nodes checked for a known type only."""
    jsonschema = require("jsonschema", "schema", "optimus validate")
    doc = schema()
    if part == "shallow":
        doc["$defs"]["node"] = {k: v for k, v in doc["$defs"]["node"].items() if k != "allOf"}
    elif part:
        doc = {"$schema": doc["$schema"], "$ref": f"#/$defs/{part}", "$defs": doc["$defs"]}
    return jsonschema.Draft202012Validator(doc)


def _errors(definition: Any) -> list[Any]:
    """The schema's errors, the nodes checked one by one against their own type's schema:
    the verdict of the whole schema, without trying each node against every type."""
    errors = list(_validator("shallow").iter_errors(definition))
    nodes = definition.get("nodes") if isinstance(definition, Mapping) else None
    known = set(schema()["$defs"]["node"]["properties"]["type"]["enum"])
    for index, node in enumerate(nodes if isinstance(nodes, list) else ()):
        kind = node.get("type") if isinstance(node, Mapping) else None
        if isinstance(kind, str) and kind in known:
            for error in _validator(f"node.{kind}").iter_errors(node):
                error.path.extendleft(["nodes", index][::-1])  # relative to the document
                errors.append(error)
    return errors


def validate(definition: Mapping[str, Any] | str | os.PathLike,
             fast: bool = True) -> list[Problem]:
    """Every problem of a definition (a parsed document or a JSON file), each with its JSON
    path; empty when it conforms to the schema. Needs the ``schema`` extra (jsonschema).

    ``fast`` checks each node against its own type's schema directly (the same verdict as
    the whole schema, whose ``if``/``then`` chain tries every type; ``fast=False`` runs that).

    Raises:
        FormatError: the file is not JSON.
        MissingDependencyError: jsonschema is not installed.
    """
    if isinstance(definition, (str, os.PathLike)):
        try:
            definition = json.loads(Path(definition).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FormatError(f"{definition}: not a JSON text ({err})") from None
    errors = _errors(definition) if fast else list(_validator().iter_errors(definition))
    problems = {}
    for error in errors:
        for leaf in _leaves(error):
            problem = Problem(json_path(leaf.absolute_path), leaf.message)
            problems[str(problem)] = problem
    return sorted(problems.values(), key=lambda p: p.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optimus.schema",
                                     description="Print (or --write) the definition schema.")
    parser.add_argument("--write", action="store_true", help=f"rewrite {SCHEMA_FILE.name}")
    args = parser.parse_args(argv)
    text = json.dumps(generate(), indent=1) + "\n"
    if args.write:
        SCHEMA_FILE.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["generate", "schema", "validate", "Problem", "json_path", "SCHEMA_FILE", "FIELDS",
           "RANGES", "STEP_RULE_FIELDS"]
