"""Iteration schemes: every example once per pass, in order or shuffled by (seed, epoch)."""
import numpy as np
import pytest

from optimus.data import SequentialScheme, ShuffledScheme
from optimus.errors import ConfigError


def rows(scheme, epoch=0):
    return np.concatenate([np.arange(10)[b] for b in scheme.batches(epoch)])


def test_sequential_batches_are_slices_in_order_with_a_short_last_one():
    scheme = SequentialScheme(10, 4)
    assert scheme.batches() == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert len(scheme) == 3
    assert scheme.batches(5) == scheme.batches(0)
    assert len(SequentialScheme(10, 4, drop_last=True)) == 2
    assert SequentialScheme(10, 4, drop_last=True).batches()[-1] == slice(4, 8)


def test_shuffled_covers_every_example_once_and_differs_by_epoch():
    scheme = ShuffledScheme(10, 3, seed=7)
    assert [len(b) for b in scheme.batches(0)] == [3, 3, 3, 1]
    assert sorted(rows(scheme, 0)) == list(range(10))
    assert not np.array_equal(rows(scheme, 0), rows(scheme, 1))
    np.testing.assert_array_equal(rows(scheme, 1), rows(ShuffledScheme(10, 3, seed=7), 1))
    assert not np.array_equal(rows(scheme, 0), rows(ShuffledScheme(10, 3, seed=8), 0))


def test_shuffled_without_seed_follows_numpys_global_seed():
    np.random.seed(3)
    a = ShuffledScheme(10, 3)
    np.random.seed(3)
    b = ShuffledScheme(10, 3)
    assert a.seed == b.seed
    np.testing.assert_array_equal(rows(a, 2), rows(b, 2))


@pytest.mark.parametrize("args", [(0, 4), (10, 0), (10, 2.5), (True, 3)])
def test_bad_sizes_are_named(args):
    with pytest.raises(ConfigError, match="SequentialScheme: (num_examples|batch_size)"):
        SequentialScheme(*args)
