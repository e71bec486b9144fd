"""Node specs (`optimus.nodes.specs`): every node type a fast kernel computes describes itself
with a frozen spec built from its checked config; kernels read nothing else of a node."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import optimus
from optimus.fast import kernel as fast_kernel
from optimus.nodes import specs

from .cases import CASES
from .test_numeric import build

SPEC_OF = {
    "Sigmoid": specs.ActivationSpec, "Tanh": specs.ActivationSpec,
    "RectifiedLinear": specs.ActivationSpec, "SoftRectifiedLinear": specs.ActivationSpec,
    "Softmax": specs.ActivationSpec, "LogSoftmax": specs.ActivationSpec,
    "Affine": specs.DenseSpec, "CenteredAffine": specs.DenseSpec,
    "Conv3D": specs.ConvSpec, "Conv2D": specs.ConvSpec,
    "MaxPool": specs.PoolSpec, "AvgPool": specs.PoolSpec, "Flatten": specs.FlattenSpec,
    "Dropout": specs.DropoutSpec, "GaussianNoise": specs.NoiseSpec,
    "BatchNorm": specs.BatchNormSpec, "WeightDecayPenalty": specs.PenaltySpec,
}
# Kernel-covered node types with nothing to describe beyond their type (and port names).
NO_SPEC = {"Add", "NegativeLogLikelihoodLoss", "NegativeLogLikelihood",
           "CategoricalCrossEntropy", "SoftmaxCrossEntropyLoss"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_spec_is_frozen_typed_and_equal_for_equal_config(case):
    node = build(case)
    expected = SPEC_OF.get(case.type)
    if expected is None:
        assert node.spec is None
        return
    spec = node.spec
    assert type(spec) is expected and dataclasses.is_dataclass(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(spec, dataclasses.fields(spec)[0].name, None)
    assert build(case).spec == spec and hash(build(case).spec) == hash(spec)
    with pytest.raises(AttributeError):
        node.spec = spec  # read-only


def test_every_kernel_covered_type_has_a_spec_or_needs_none():
    covered = set(fast_kernel.covered_node_types())
    assert covered <= set(SPEC_OF) | NO_SPEC, covered - set(SPEC_OF) - NO_SPEC


KERNEL_MODULES = ["activations", "dense", "conv", "losses", "combine", "regularize", "shape",
                  "fusion", "blas"]
ALLOWED = {"spec", "input_names", "name", "params"}


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_kernels_read_only_the_spec_of_a_node(module):
    path = Path(optimus.__file__).parent / "fast" / f"{module}.py"
    text = path.read_text(encoding="utf-8")
    read = set(re.findall(r"\bnode\.([A-Za-z_]\w*)", text))
    assert read <= ALLOWED, f"optimus/fast/{module}.py reads node.{read - ALLOWED}"
    assert "getattr(" not in text and ".config" not in text


def test_conv_spec_of_each_padding():
    shape = (None, 2, 7, 7)
    spec = optimus.Conv2D("c", shape, num_filters=3, kernel_size=3, padding="same").spec
    assert (spec.padding, spec.pre_pad, spec.stride) == ((1, 1), None, (1, 1))
    even = optimus.Conv2D("c", shape, num_filters=3, kernel_size=(2, 4), padding="same").spec
    assert even.padding == (0, 0) and even.pre_pad == (1, 2, 0, 1)  # left, right, top, bottom
    full = optimus.Conv3D("c", shape, (3, 2, 3, 2), border_mode="full", pool_shape=(2, 2),
                          act_type="tanh").spec
    assert full.padding == (2, 1) and full.pool == (2, 2) and full.pools
    assert full.activation == specs.ActivationSpec("tanh") and full.pool_first
    assert not optimus.Conv3D("c", shape, (3, 2, 3, 3), act_type="gelu").spec.pool_first


def test_dense_and_activation_specs():
    spec = optimus.CenteredAffine("a", (None, 2, 3), (None, 2, 2), "softplus").spec
    assert spec == specs.DenseSpec(specs.ActivationSpec("softplus"), (2, 2), centered=True)
    assert optimus.SoftRectifiedLinear("s", knee=3.0).spec == specs.ActivationSpec(
        "softplus", beta=3.0)
    assert optimus.LogSoftmax("s", axis=-1).spec.params == {"axis": -1}
    assert optimus.WeightDecayPenalty("p").spec == specs.PenaltySpec(None, "sum_squares")
