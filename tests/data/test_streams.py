"""Streams yield dicts keyed by input names, pass by pass, and can rejoin any batch."""
import numpy as np
import pytest
import torch

from optimus.data import (DataStream, LoaderStream, SequentialScheme, ShuffledScheme,
                          batch_size_of, minibatch, open_epoch)
from optimus.errors import ConfigError, InputError

X = np.arange(20, dtype="float32").reshape(10, 2)
Y = np.arange(10)


def test_data_stream_yields_dicts_of_views_in_scheme_order():
    stream = DataStream({"data": X, "labels": Y}, SequentialScheme(10, 4))
    batches = list(stream)
    assert len(stream) == 3 and len(batches) == 3
    assert set(batches[0]) == {"data", "labels"}
    np.testing.assert_array_equal(batches[2]["labels"], [8, 9])
    assert np.shares_memory(batches[0]["data"], X)  # sequential batches are zero-copy


def test_shuffled_stream_changes_order_every_pass_and_rejoins_any_batch():
    stream = DataStream({"data": X, "labels": Y}, ShuffledScheme(10, 3, seed=0))
    first, second = list(stream), list(stream)  # passes 0 and 1
    assert not all(np.array_equal(a["labels"], b["labels"]) for a, b in zip(first, second))
    tail = list(stream.epoch_iterator(epoch=1, start=2))
    assert len(tail) == 2
    for a, b in zip(tail, second[2:]):
        np.testing.assert_array_equal(a["data"], b["data"])
    for batch in second:
        np.testing.assert_array_equal(batch["data"][:, 0], 2 * batch["labels"])


def test_sources_must_match_the_scheme():
    with pytest.raises(ConfigError, match="'labels' has shape"):
        DataStream({"data": X, "labels": Y[:5]}, SequentialScheme(10, 4))
    with pytest.raises(ConfigError, match="Scheme"):
        DataStream({"data": X}, 4)


def test_loader_stream_names_tuple_batches_and_replays_torch_shuffling():
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True)
    stream = LoaderStream(loader, names=("data", "labels"))
    assert len(stream) == 3
    state = torch.get_rng_state()
    full = list(stream.epoch_iterator(0))
    torch.set_rng_state(state)
    tail = list(stream.epoch_iterator(0, start=1))  # skips eagerly, with the same shuffle
    assert set(full[0]) == {"data", "labels"}
    for a, b in zip(tail, full[1:]):
        assert torch.equal(a["labels"], b["labels"])
    with pytest.raises(InputError, match="names"):
        next(iter(LoaderStream(loader)))
    with pytest.raises(ConfigError, match="re-iterable"):
        LoaderStream(iter(loader))


def test_open_epoch_skips_batches_of_any_iterable():
    source = [{"i": np.array([k])} for k in range(5)]
    assert [b["i"][0] for b in open_epoch(source, 0, 3)] == [3, 4]
    assert list(open_epoch(source, 0, 9)) == []


def test_batch_size_of_reads_the_first_array():
    assert batch_size_of({"lr": 0.1, "data": X}) == 10
    with pytest.raises(InputError, match="batch size"):
        batch_size_of({"lr": 0.1})


def test_minibatch_is_endless_and_reshuffles():
    gen = minibatch(X, Y, batch_size=4, rng=np.random.RandomState(0))
    seen = np.concatenate([next(gen)["labels"] for _ in range(5)])
    assert sorted(seen[:10]) == list(range(10))  # the first pass covers every row once
    assert len(list(minibatch(X, Y, 3, max_iter=7))) == 7
