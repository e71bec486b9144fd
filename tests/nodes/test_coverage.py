"""Every registered node type is tested: a node added later without a case, a config-error
row or an export fails here, naming it."""
from __future__ import annotations

import inspect

import optimus
import optimus.nodes
from optimus.nodes import catalog

from .cases import CASES
from .test_config import BAD


def library_types() -> dict[str, type]:
    """Registered node types defined in the optimus package (not test helpers)."""
    return {name: cls for name, cls in optimus.registry.registered("node").items()
            if cls.__module__.startswith("optimus.")}


def test_every_node_type_has_numeric_and_round_trip_cases():
    # test_numeric (forward, gradients, gradcheck, shapes) and test_roundtrip (save/load)
    # are parametrised over CASES, so a case gives a type both kinds of test.
    covered = {c.type for c in CASES}
    missing = sorted(set(library_types()) - covered)
    assert not missing, f"node types without a case in tests/nodes/cases.py: {missing}"
    assert covered <= set(library_types())


def test_every_configurable_node_type_has_a_bad_config_case():
    configurable = {name for name, cls in library_types().items()
                    if set(inspect.signature(cls.__init__).parameters) - {"self", "name"}}
    missing = sorted(configurable - {t for t, _, _ in BAD})
    assert not missing, f"node types without a bad-config row in test_config.BAD: {missing}"


def test_every_node_type_is_exported():
    for name in library_types():
        assert name in optimus.nodes.__all__, name
        assert getattr(optimus, name) is library_types()[name]


def test_catalog_parameter_names_match_the_nodes():
    for case in CASES:
        node = optimus.registry.lookup("node", case.type)(name="node", **case.kwargs)
        assert list(node.params) == list(getattr(type(node), "param_shapes", {})), case.id


def test_catalog_lists_every_node_type():
    assert [cls.__name__ for cls in catalog.node_types()] == \
        sorted(library_types(), key=lambda n: (library_types()[n].__module__, n))
    table = catalog.markdown_table()
    for name in library_types():
        assert f"| `{name}` |" in table
