"""Transformers change batches on the fly: flatten, cast, scale, noise, any function."""
import numpy as np
import pytest
import torch

from optimus.data import (AddNoise, Cast, DataStream, FlattenFeatures, LoaderStream, Map,
                          Scale, SequentialScheme, ShuffledScheme)
from optimus.errors import ConfigError

IMAGES = np.random.RandomState(0).rand(6, 1, 4, 4).astype("float32")
LABELS = np.arange(6)


def stream(scheme=None):
    return DataStream({"data": IMAGES, "labels": LABELS}, scheme or SequentialScheme(6, 4))


def test_flatten_reshapes_examples_and_leaves_labels():
    batches = list(FlattenFeatures(stream()))
    assert batches[0]["data"].shape == (4, 16) and batches[1]["data"].shape == (2, 16)
    np.testing.assert_array_equal(batches[0]["data"], IMAGES[:4].reshape(4, 16))
    assert batches[0]["labels"].shape == (4,)
    assert len(FlattenFeatures(stream())) == 2


def test_cast_and_scale():
    batch = next(iter(Scale(Cast(stream(), "float64", which="data"), 2.0, shift=1.0)))
    assert batch["data"].dtype == np.float64
    np.testing.assert_allclose(batch["data"], IMAGES[:4] * 2 + 1)
    np.testing.assert_array_equal(batch["labels"], LABELS[:4])  # integers: not scaled
    assert next(iter(Scale(stream(), 0.5)))["data"].dtype == np.float32


def test_noise_has_the_right_size_and_depends_only_on_seed_epoch_and_batch():
    big = DataStream({"data": np.zeros((4000, 5), "float32")}, SequentialScheme(4000, 2000))
    noisy = AddNoise(big, std=0.1, seed=3)
    pass0, pass1 = list(noisy), list(noisy)
    assert pass0[0]["data"].dtype == np.float32
    assert abs(pass0[0]["data"].std() - 0.1) < 0.005 and abs(pass0[0]["data"].mean()) < 0.005
    assert not np.array_equal(pass0[0]["data"], pass0[1]["data"])
    assert not np.array_equal(pass0[0]["data"], pass1[0]["data"])
    again = list(noisy.epoch_iterator(epoch=1, start=1))
    np.testing.assert_array_equal(again[0]["data"], pass1[1]["data"])


def test_noise_only_touches_float_entries_by_default():
    batch = next(iter(AddNoise(stream(), 1.0, seed=0)))
    np.testing.assert_array_equal(batch["labels"], LABELS[:4])
    assert not np.array_equal(batch["data"], IMAGES[:4])
    with pytest.raises(ConfigError, match="std"):
        AddNoise(stream(), -1.0)


def test_transformers_work_on_torch_loaders():
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(IMAGES), torch.from_numpy(LABELS))
    loader = LoaderStream(torch.utils.data.DataLoader(dataset, batch_size=3), ("data", "labels"))
    batch = next(iter(AddNoise(FlattenFeatures(loader), 0.1, which="data", seed=0)))
    assert tuple(batch["data"].shape) == (3, 16) and batch["data"].dtype == torch.float32


def test_map_and_missing_entries():
    doubled = next(iter(Map(stream(), lambda b: {**b, "labels": b["labels"] * 2})))
    np.testing.assert_array_equal(doubled["labels"], LABELS[:4] * 2)
    with pytest.raises(KeyError, match="features"):
        next(iter(FlattenFeatures(stream(), which="features")))
    with pytest.raises(ConfigError, match="re-iterable"):
        FlattenFeatures(iter([]))


def test_shuffled_stream_with_noise_rejoins_mid_pass():
    noisy = AddNoise(stream(ShuffledScheme(6, 2, seed=1)), 0.5, which="data", seed=2)
    full = list(noisy.epoch_iterator(epoch=4))
    tail = list(noisy.epoch_iterator(epoch=4, start=1))
    for a, b in zip(tail, full[1:]):
        np.testing.assert_array_equal(a["data"], b["data"])
