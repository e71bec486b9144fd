"""Tests of optimus.datasets.mnist and of the file lookup in optimus.datasets.files.

Real data comes from $OPTIMUS_DATA (run with OPTIMUS_DATA=../shared/data); nothing is downloaded:
the loaders are called with download=False, and the download test uses a local file:// URL.
"""

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from optimus.datasets import files, mnist
from optimus.errors import DataFormatError, DataNotFoundError, OptimusError

MNIST_NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
# Published per-digit counts of the 60,000 training and 10,000 test labels.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def splits(data_root):
    """MNIST found through $OPTIMUS_DATA alone (no data_dir, no download)."""
    return mnist.load(download=False)


@pytest.fixture()
def empty_env(tmp_path, monkeypatch) -> Path:
    """Point $OPTIMUS_DATA and the cache folder at empty folders so only data_dir can match."""
    monkeypatch.setenv("OPTIMUS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _raw_idx(path: Path, header: int) -> np.ndarray:
    """Read an IDX .gz file's payload directly, independently of the code under test."""
    with gzip.open(path, "rb") as stream:
        return np.frombuffer(stream.read()[header:], dtype=np.uint8)


def _write_gz(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as stream:
        stream.write(payload)


def _fake_mnist(root: Path, data_root: Path, bad_name: str, payload: bytes) -> Path:
    """A data folder with the real MNIST files linked in, except one replaced by ``payload``."""
    for name in MNIST_NAMES:
        target = root / "mnist" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == bad_name:
            _write_gz(target, payload)
        else:
            target.symlink_to((data_root / "mnist" / name).absolute())
    return root / "mnist" / bad_name


# ---------------------------------------------------------------- the real data


def test_shapes_and_dtypes(splits):
    sizes = [50_000, 10_000, 10_000]
    for (data, labels), n in zip(splits, sizes):
        assert data.shape == (n, 1, 28, 28)
        assert data.dtype == np.float32
        assert labels.shape == (n,)
        assert labels.dtype == np.int64


def test_values_are_pixels_over_255(splits, data_root):
    (train_x, _), (valid_x, _), (test_x, _) = splits
    for data in (train_x, valid_x, test_x):
        assert data.min() == 0.0 and data.max() == 1.0
    raw = _raw_idx(data_root / "mnist" / "train-images-idx3-ubyte.gz", 16)
    raw = raw.reshape(60_000, 1, 28, 28)
    np.testing.assert_array_equal(train_x[:500], raw[:500].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(valid_x[-500:], raw[-500:].astype(np.float32) / np.float32(255))
    assert int(raw[0].sum()) == 27525  # the first training image, a 5


def test_labels_match_raw_files(splits, data_root):
    (train_y, valid_y, test_y) = (split[1] for split in splits)
    raw_train = _raw_idx(data_root / "mnist" / "train-labels-idx1-ubyte.gz", 8)
    raw_test = _raw_idx(data_root / "mnist" / "t10k-labels-idx1-ubyte.gz", 8)
    np.testing.assert_array_equal(train_y, raw_train[:50_000])
    np.testing.assert_array_equal(valid_y, raw_train[50_000:])
    np.testing.assert_array_equal(test_y, raw_test)
    assert train_y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert valid_y[:5].tolist() == [3, 8, 6, 9, 6]
    assert test_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_label_counts(splits):
    (train_y, valid_y, test_y) = (split[1] for split in splits)
    both = np.bincount(train_y, minlength=10) + np.bincount(valid_y, minlength=10)
    assert both.tolist() == TRAIN_COUNTS
    assert np.bincount(test_y, minlength=10).tolist() == TEST_COUNTS
    valid_counts = [991, 1064, 990, 1030, 983, 915, 967, 1090, 1009, 961]
    assert np.bincount(valid_y, minlength=10).tolist() == valid_counts


def test_arrays_are_read_only_and_cached(splits):
    (train_x, train_y), _, _ = splits
    with pytest.raises(ValueError):
        train_x[0, 0, 0, 0] = 0.5
    with pytest.raises(ValueError):
        train_y[0] = 3
    with pytest.raises(ValueError):
        train_x.base[0] = 0.5  # not even through the array it views
    again = mnist.load(download=False)
    assert again[0][0] is train_x  # served from the in-process cache
    assert again[0][1][0] == 5


def test_data_dir_argument_is_used(data_root, empty_env):
    (train_x, _), _, (test_x, _) = mnist.load(data_dir=data_root, download=False)
    assert train_x.shape[0] == 50_000 and test_x.shape[0] == 10_000


# ---------------------------------------------------------------- corrupt files


def test_bad_magic_names_the_file(tmp_path, data_root, empty_env):
    bad = _fake_mnist(tmp_path / "data", data_root, "train-images-idx3-ubyte.gz",
                      b"\x00\x00\x08\x01" + (60_000).to_bytes(4, "big") + bytes(60_000))
    with pytest.raises(DataFormatError) as info:
        mnist.load(data_dir=tmp_path / "data", download=False)
    message = str(info.value)
    assert str(bad) in message
    assert "0x00000801" in message and "0x00000803" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, OptimusError)


def test_truncated_images_name_the_file(tmp_path, data_root, empty_env):
    header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (60_000, 28, 28))
    payload = header + bytes(784 * 3)  # three images where the header promises 60,000
    bad = _fake_mnist(tmp_path / "data", data_root, "train-images-idx3-ubyte.gz", payload)
    with pytest.raises(DataFormatError, match="truncated") as info:
        mnist.load(data_dir=tmp_path / "data", download=False)
    assert str(bad) in str(info.value)


def test_label_count_mismatch_names_the_file(tmp_path, data_root, empty_env):
    bad = _fake_mnist(tmp_path / "data", data_root, "t10k-labels-idx1-ubyte.gz",
                      b"\x00\x00\x08\x01" + (9_999).to_bytes(4, "big") + bytes(9_999))
    with pytest.raises(DataFormatError, match="9999 labels") as info:
        mnist.load(data_dir=tmp_path / "data", download=False)
    assert str(bad) in str(info.value)


def test_read_idx_rejects_broken_gzip(tmp_path):
    bad = tmp_path / "broken.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    with pytest.raises(DataFormatError, match="gzip") as info:
        mnist.read_idx(bad)
    assert str(bad) in str(info.value)


def test_read_idx_big_endian_types(tmp_path):
    values = (np.arange(6).reshape(2, 3) - 3).astype(">i4")  # big-endian bytes on disk
    path = tmp_path / "ints.idx"
    header = b"\x00\x00\x0c\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")  # int32, 2-D
    path.write_bytes(header + values.tobytes())
    parsed = mnist.read_idx(path)  # raw (not gzipped) files are accepted too
    np.testing.assert_array_equal(parsed, values)
    assert parsed.dtype == np.int32 and parsed.dtype.isnative


# ---------------------------------------------------------------- locating files


def test_missing_files_error_names_every_file_and_folder(tmp_path, empty_env):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as info:
        mnist.load(data_dir=empty, download=False)
    message = str(info.value)
    for name in MNIST_NAMES:
        assert f"mnist/{name}" in message
    for folder in (empty, tmp_path / "env", tmp_path / "cache" / "optimus"):
        assert str(folder.absolute()) in message
    assert "OPTIMUS_DATA" in message and "download=False" in message
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.missing == tuple(f"mnist/{name}" for name in MNIST_NAMES)


def test_missing_error_says_when_optimus_data_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTIMUS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError, match=r"\$OPTIMUS_DATA is not set"):
        files.find_file("mnist/nothing.gz", tmp_path, download=False)


def test_search_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    dirs = {name: tmp_path / name for name in ("arg", "env", "cache")}
    monkeypatch.setenv("OPTIMUS_DATA", str(dirs["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(dirs["cache"]))
    cache = dirs["cache"] / "optimus"
    assert files.cache_dir() == cache
    for folder in (dirs["arg"], dirs["env"], cache):
        (folder / "x").mkdir(parents=True)
        (folder / "x" / "f.txt").write_text(folder.name)
    assert files.find_file("x/f.txt", dirs["arg"]) == dirs["arg"] / "x" / "f.txt"
    (dirs["arg"] / "x" / "f.txt").unlink()
    assert files.find_file("x/f.txt", dirs["arg"]) == dirs["env"] / "x" / "f.txt"
    (dirs["env"] / "x" / "f.txt").unlink()
    assert files.find_file("x/f.txt", dirs["arg"]) == cache / "x" / "f.txt"


def test_download_is_atomic_and_md5_checked(tmp_path, monkeypatch):
    # A file:// URL exercises the download path without any network access.
    source = tmp_path / "mirror" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(b"optimus" * 1000)
    good_md5 = hashlib.md5(source.read_bytes()).hexdigest()
    monkeypatch.setenv("OPTIMUS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    target_dir = tmp_path / "cache" / "optimus" / "blobs"

    wrong = files.DataFile("blobs/blob.bin", md5="0" * 32, url=source.as_uri())
    with pytest.raises(DataNotFoundError, match="md5") as info:
        files.find_file(wrong, download=True)
    assert "blobs/blob.bin" in str(info.value)
    assert not (tmp_path / "cache").exists()  # no half file, temporary or empty folder left

    right = files.DataFile("blobs/blob.bin", md5=good_md5, url=source.as_uri())
    path = files.find_file(right, download=True)
    assert path == target_dir / "blob.bin"
    assert files.md5sum(path) == good_md5
    assert list(target_dir.iterdir()) == [path]


def test_no_mirror_is_reported(tmp_path, empty_env):
    spec = files.DataFile("sentiment/books/positive.review")
    with pytest.raises(DataNotFoundError, match="no public mirror"):
        files.find_file(spec, tmp_path, download=True)


def test_mnist_checksums_match_shared_data(data_root):
    # The md5 table used for downloads must agree with the canonical files.
    for spec in mnist.FILES:
        assert files.md5sum(data_root / spec.relpath) == spec.md5
        assert spec.url == mnist.MIRROR + Path(spec.relpath).name
