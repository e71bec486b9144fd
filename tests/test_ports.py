import re

import numpy as np
import pytest

import optimus
from optimus.errors import ConfigError, ParameterError


def test_input_shapes_and_dtypes():
    assert optimus.Input("data", (None, 1, 28, 28)).shape == (None, 1, 28, 28)
    assert optimus.Input("lr", None).shape == ()
    assert optimus.Input("labels", [None], "int32").dtype == "int32"
    assert optimus.Input("x", (None, 2), np.float64).dtype == "float64"


@pytest.mark.parametrize("shape, field", [((3, None), "shape[1]"), ((None, 0), "shape[1]"),
                                          ((None, -2), "shape[1]"), ("abc", "shape")])
def test_bad_shapes_name_the_input_and_axis(shape, field):
    with pytest.raises(ConfigError, match=r"'data'.*" + re.escape(field)):
        optimus.Input("data", shape)


def test_bad_names_and_dtypes():
    with pytest.raises(ConfigError, match="name"):
        optimus.Input("a.b", (None, 2))
    with pytest.raises(ConfigError, match="'x'.*dtype 'complex64'"):
        optimus.Input("x", (None, 2), "complex64")


def test_parameter_defaults_to_zero_and_checks_shape():
    affine = optimus.Affine("affine", (None, 3), (None, 2))
    assert affine.weights.name == "affine.weights"
    assert affine.weights.shape == (3, 2)
    np.testing.assert_array_equal(affine.weights.value, np.zeros((3, 2)))
    with pytest.raises(ParameterError, match=r"'affine.weights'.*\(3, 2\).*\(2, 3\)"):
        affine.weights.value = np.ones((2, 3))
    affine.weights.value = np.ones((3, 2))
    assert affine.weights.value.sum() == 6


def test_random_init_is_seeded_and_has_the_moments():
    affine = optimus.Affine("affine", (None, 300), (None, 200))
    optimus.random_init(affine.weights, mean=1.0, std=0.1, seed=3)
    first = affine.weights.value
    optimus.random_init(affine.weights, mean=1.0, std=0.1, seed=3)
    np.testing.assert_array_equal(first, affine.weights.value)
    assert abs(first.mean() - 1.0) < 0.01 and abs(first.std() - 0.1) < 0.01
    np.random.seed(5)
    optimus.random_init(affine.weights, 0.0, 1.0)
    np.random.seed(5)
    np.testing.assert_allclose(affine.weights.value, np.random.normal(0, 1, (300, 200)),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("init, draw", [
    (lambda p: optimus.random_init(p, 0.5, 2.0), lambda n: np.random.normal(0.5, 2.0, n)),
    (lambda p: optimus.uniform_init(p, -1.0, 3.0), lambda n: np.random.uniform(-1.0, 3.0, n))])
def test_initialisers_draw_in_pieces_the_numbers_of_one_draw(monkeypatch, init, draw):
    """Drawn piece by piece (here 7 values a piece, so an odd count splits NumPy's pairs of
    normal draws), the values and the generator's state after them are those of one draw."""
    from optimus import initializers
    monkeypatch.setattr(initializers, "DRAW_CHUNK", 7)
    affine = optimus.Affine("affine", (None, 9), (None, 5))
    np.random.seed(11)
    init(affine.weights)
    after = np.random.random()
    np.random.seed(11)
    expected = draw(45).reshape(9, 5)
    np.testing.assert_array_equal(affine.weights.value, expected.astype(np.float32))
    assert np.random.random() == after


def test_port_shapes_known_at_construction():
    conv = optimus.Conv3D("conv", (None, 1, 28, 28), (15, 1, 9, 9), pool_shape=(2, 2))
    assert conv.output.shape == (None, 15, 10, 10)
    assert conv.input.shape == (None, 1, 28, 28)
    affine = optimus.Affine("affine", conv.output.shape, (None, 512))
    assert affine.weights.shape == (1500, 512) and affine.bias.shape == (512,)
    assert affine.output.shape == (None, 512)
    assert optimus.Softmax("softmax").output.shape is None  # known once wired
