"""The definition schema: generated from the registry (the committed file is what the code
generates), valid JSON Schema 2020-12, every example's saved JSON conforms, a broken file's
problems are listed with their JSON paths, and `load` (which needs no jsonschema) refuses
every definition the schema refuses, at the same path."""
from __future__ import annotations

import copy
import json
import warnings

import jsonschema
import pytest

import optimus
from optimus import schema
from optimus.errors import FormatError
from optimus.nodes.catalog import node_types
from optimus.serialize import FORMAT_VERSION, graph_from_dict, graph_to_dict

FIXTURE = "tests/fixtures/notebook_mnist_trainer.json"


def example_graphs() -> dict[str, optimus.Graph]:
    from optimus.examples import (seed000_mnist_convnet, seed001_sentiment_mlp,
                                  seed002_blocks_mlp, seed003_mxnet_cnn, seed004_flux_conv)
    params = seed001_sentiment_mlp.lxmls_init()
    return {
        "seed000": seed000_mnist_convnet.build_trainer(),
        "seed001": seed001_sentiment_mlp.build_graph(params, "auto"),
        "seed002": seed002_blocks_mlp.build()[0],
        "seed002-predictor": seed002_blocks_mlp.build()[1],
        "seed003": seed003_mxnet_cnn.build()[0],
        "seed004": seed004_flux_conv.build()[0],
        "seed004-variants": seed004_flux_conv.build(dropout=0.3, batch_norm=True)[0],
    }


def test_committed_schema_is_what_the_registry_generates():
    assert schema.schema() == schema.generate(), (
        "optimus/definition.schema.json is stale: run python -m optimus.schema --write")


def test_schema_is_valid_2020_12_and_covers_every_node_type():
    doc = schema.schema()
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].endswith(f":{FORMAT_VERSION}")
    types = {cls.__name__ for cls in node_types()}
    assert set(doc["$defs"]["node"]["properties"]["type"]["enum"]) == types
    affine = doc["$defs"]["node.Affine"]
    assert affine["required"] == ["type", "name", "input_shape", "output_shape"]
    assert affine["properties"]["act_type"]["enum"][:2] == ["linear", "relu"]
    assert doc["$defs"]["node.Dropout"]["properties"]["rate"] == {
        "type": "number", "minimum": 0.0, "exclusiveMaximum": 1.0}


@pytest.mark.parametrize("name,graph", list(example_graphs().items()))
def test_every_example_saved_json_validates(name, graph, tmp_path):
    optimus.save(graph, tmp_path / "g.json")
    assert schema.validate(tmp_path / "g.json") == []
    optimus.load(tmp_path / "g.json")


def test_the_2015_notebook_definition_validates():
    assert schema.validate(FIXTURE) == []


def seed000_doc() -> dict:
    return graph_to_dict(example_graphs()["seed000"])


def test_a_broken_file_lists_every_problem_with_its_path(tmp_path):
    doc = seed000_doc()
    doc["nodes"][0]["weight_shape"] = [15, -1, 9, 9]
    doc["nodes"][1]["act_type"] = "relux"
    doc["nodes"][2]["bogus"] = 1
    doc["nodes"][3]["type"] = "Softmaxx"
    doc["inputs"][1]["dtype"] = "int31"
    doc["format_version"] = FORMAT_VERSION + 1
    del doc["name"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    problems = {p.path: p.message for p in schema.validate(path)}
    assert set(problems) == {"(top)", "format_version", "inputs[1].dtype",
                             "nodes[0].weight_shape[1]", "nodes[1].act_type", "nodes[2]",
                             "nodes[3].type"}
    assert "'name' is a required property" in problems["(top)"]
    assert "'bogus' was unexpected" in problems["nodes[2]"]
    assert "'relux' is not one of" in problems["nodes[1].act_type"]
    assert schema.validate(path) == schema.validate(path, fast=False)  # same verdict


BAD_VALUES = [-1, 0.5, "x", None, [], [None, 3], True, {"a": 1}]


def mutations(doc: dict, seen: set):
    """Each field of a node of a type not ``seen`` yet, each Input/Output field and each
    step-rule field, set to each bad value."""
    for i, node in enumerate(doc["nodes"]):
        if node["type"] in seen:
            continue
        seen.add(node["type"])
        for field in node:
            for value in BAD_VALUES:
                yield f"nodes[{i}].{field}", ("nodes", i, field), value
    for key in ("inputs", "outputs"):
        for i in range(len(doc[key])):
            for field in ("name", "shape", "type", "extra"):
                for value in BAD_VALUES:
                    yield f"{key}[{i}].{field}", (key, i, field), value
    for field in ("eps", "betas", "type", "weight_decay"):
        for value in BAD_VALUES:
            yield f"step_rule.{field}", ("step_rule", field), value


def load_error(doc: dict) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph_from_dict(doc, source="def.json")
    except FormatError as err:
        return str(err)
    return None


def test_load_refuses_what_the_schema_refuses_at_the_same_path():
    from optimus.examples import seed004_flux_conv
    docs = [seed000_doc(), graph_to_dict(seed004_flux_conv.build(dropout=0.3,
                                                                  batch_norm=True)[0])]
    refused, seen = 0, set()
    for base in docs:
        for where, keys, value in mutations(base, seen):
            doc = copy.deepcopy(base)
            target = doc
            for key in keys[:-1]:
                target = target[key]
            target[keys[-1]] = value
            problems = schema.validate(doc)
            if not problems:
                continue
            refused += 1
            error = load_error(doc)
            assert error is not None, f"{where}={value!r}: the schema refuses it, load does not"
            path = error.split(": ")[1]
            assert any(p.path.startswith(path) or path.startswith(p.path) for p in problems), (
                f"{where}={value!r}: load says {error!r}, the schema {problems}")
    assert refused > 300


def test_a_newer_format_version_is_refused_by_both(tmp_path):
    doc = seed000_doc()
    doc["format_version"] = FORMAT_VERSION + 1
    path = tmp_path / "new.json"
    path.write_text(json.dumps(doc))
    assert [p.path for p in schema.validate(path)] == ["format_version"]
    with pytest.raises(FormatError, match=r"format_version: 2 is newer than this optimus "
                                          r"understands \(1\); upgrade optimus"):
        optimus.load(path)
