"""Each rank's rows of a global batch: in order, every row once, sizes within one row."""
from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from optimus.distributed import shard_batch, shard_rows


@given(st.integers(1, 300), st.integers(1, 9))
def test_the_parts_cover_the_batch_once_in_order(total, world_size):
    parts = [shard_rows(total, r, world_size) for r in range(world_size)]
    rows = [i for part in parts for i in range(total)[part]]
    assert rows == list(range(total))
    sizes = [len(range(total)[p]) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_a_batch_is_sliced_by_rows_and_scalars_pass_whole():
    batch = {"data": np.arange(10).reshape(5, 2), "labels": np.arange(5), "rate": 0.1}
    part, rows, total = shard_batch(batch, 1, 2)
    assert (rows, total) == (3, 5)
    np.testing.assert_array_equal(part["data"], batch["data"][2:5])
    np.testing.assert_array_equal(part["labels"], [2, 3, 4])
    assert part["rate"] == 0.1
    assert np.shares_memory(part["data"], batch["data"])  # a view, not a copy


def test_a_loader_batch_of_tensors_is_sliced_too():
    import torch

    batch = {"data": torch.arange(14.0).reshape(7, 2), "labels": torch.arange(7)}
    part, rows, total = shard_batch(batch, 0, 2)
    assert (rows, total) == (3, 7)
    assert torch.equal(part["labels"], torch.tensor([0, 1, 2]))
