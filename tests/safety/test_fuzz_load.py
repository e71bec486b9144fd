"""Property-based fuzz of `optimus.load` (Hypothesis): structure-aware mutations of the seed
workflows' saved models (`tests/safety/mutations.py`) load or raise an `OptimusError`,
nothing else, each within a time bound (Hypothesis' deadline, a hang guard). CI runs 3,000
cases (~20 s); the benchmark ``benchmarks/fuzz_load.py`` runs the same mutations at scale
(≥ 100,000 cases)."""
from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import mutations

FUZZ = settings(max_examples=2000, deadline=timedelta(seconds=10), derandomize=True,
                database=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, len(mutations.seed_models()) - 1)


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for text, params in mutations.seed_models():  # warm up: first loads import lazily
            assert mutations.load_case(folder, text, params) == "ok"
        yield folder


@FUZZ
@given(rng=st.randoms(use_true_random=False), seed=SEEDS, with_params=st.booleans())
def test_mutated_definitions_load_or_raise_optimus_errors(folder, rng, seed, with_params):
    text, params = mutations.seed_models()[seed]
    outcome = mutations.load_case(folder, mutations.mutate_definition(rng, text),
                                  params if with_params else None)
    assert outcome == "ok" or outcome.endswith("Error")


@settings(FUZZ, max_examples=1000)
@given(rng=st.randoms(use_true_random=False), seed=SEEDS)
def test_mutated_parameter_files_load_or_raise_optimus_errors(folder, rng, seed):
    text, params = mutations.seed_models()[seed]
    outcome = mutations.load_case(folder, text, mutations.mutate_params(rng, params))
    assert outcome == "ok" or outcome.endswith("Error")


def test_the_mutations_reach_both_outcomes(folder):
    """The fuzz is not vacuous: mutated files both load and fail, for varied reasons."""
    import random
    outcomes = set()
    for i in range(60):
        rng = random.Random(i)
        text, params = mutations.seed_models()[i % len(mutations.seed_models())]
        outcomes.add(mutations.load_case(folder, mutations.mutate_definition(rng, text), None))
    assert {"ok", "FormatError"} <= outcomes
