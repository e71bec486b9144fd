"""MNIST handwritten digits, split as in the seed-000 notebook: 50,000 train / 10,000 valid / test.

Reads the four canonical gzip IDX files (``mnist/*-ubyte.gz`` under a data folder, see
`optimus.datasets.files`). Parsed arrays are cached per process and returned **read-only**
(``arr.flags.writeable`` is False) so that no caller can corrupt the cache; call ``.copy()`` on
an array before changing it in place.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from optimus.datasets.files import DataFile, find_files
from optimus.errors import DataFormatError

__all__ = ["FILES", "MIRROR", "Split", "load", "read_idx"]

#: Where `load` fetches missing files from (with ``download=True``), md5-checked.
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"

# relpath -> md5 of the published .gz file
_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
#: The four IDX files (``mnist/<name>.gz``, md5, URL) that `load` reads.
FILES = tuple(DataFile(f"mnist/{name}", md5, MIRROR + name) for name, md5 in _MD5.items())

N_TRAIN = 50_000  # the rest of the 60,000 training images is the validation set
IMAGE_SHAPE = (28, 28)

#: One split: ``(data, labels)``.
Split = tuple[np.ndarray, np.ndarray]

# IDX type byte -> big-endian NumPy dtype
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801


def load(
    data_dir: str | os.PathLike[str] | None = None, download: bool = True
) -> tuple[Split, Split, Split]:
    """Load MNIST as ``(train, valid, test)`` NumPy splits, the notebook's split of the IDX files.

    Args:
        data_dir: a folder holding ``mnist/*.gz``, searched before ``$OPTIMUS_DATA`` and the
            user cache folder.
        download: fetch missing files from the mirror into the cache folder (md5-checked).

    Returns:
        ``(train, valid, test)``, each ``(data, labels)``: data ``(N, 1, 28, 28)`` float32 in
        [0, 1] (pixels / 255), labels ``(N,)`` int64 in 0..9; N = 50,000, 10,000 and 10,000.
        train and valid are the first 50,000 and last 10,000 images of the training file.
        The arrays are read-only views of a per-process cache: copy them to modify them.

    Raises:
        DataNotFoundError: files missing and not downloadable; the message names them all.
        DataFormatError: a file is not a valid MNIST IDX file; the message names it.
    """
    paths = find_files(FILES, data_dir, download=download)
    keys = tuple(_file_key(p) for p in paths)
    return _load_cached(*keys)


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or raw) into a native-endian NumPy array.

    Args:
        path: the file.
        expected_magic: if given, the 4-byte magic number the file must start with
            (0x00000803 for MNIST images, 0x00000801 for labels).

    Raises:
        DataFormatError: bad gzip stream, wrong magic, or a size that does not match the header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise _format_error(path, f"is only {len(raw)} bytes long, too short for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise _format_error(
            path, f"has magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    zero, type_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES:
        raise _format_error(path, f"has magic number 0x{magic:08x}, which is not an IDX header")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise _format_error(path, f"ends inside its header ({len(raw)} of {header_size} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_size
    if actual != expected:
        raise _format_error(
            path,
            f"holds {actual} data bytes but its header {shape} requires {expected} (truncated?)",
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _file_key(path: Path) -> tuple[str, int, int]:
    """Return (path, mtime, size): a replaced file is parsed again, not served from the cache."""
    stat = path.stat()
    return str(path.absolute()), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=2)
def _load_cached(*keys: tuple[str, int, int]) -> tuple[Split, Split, Split]:
    """Parse and split the four files once per process; all returned arrays are read-only."""
    train_images, train_labels, test_images, test_labels = (Path(key[0]) for key in keys)
    train_x = _images(train_images)
    train_y = _labels(train_labels, len(train_x))
    test_x = _images(test_images)
    test_y = _labels(test_labels, len(test_x))
    if len(train_x) != 60_000:
        raise _format_error(
            train_images, f"has {len(train_x)} images, expected the 60,000 of MNIST"
        )
    for array in (train_x, train_y, test_x, test_y):
        _freeze(array)  # the slices below inherit read-only
    return (
        (train_x[:N_TRAIN], train_y[:N_TRAIN]),
        (train_x[N_TRAIN:], train_y[N_TRAIN:]),
        (test_x, test_y),
    )


def _images(path: Path) -> np.ndarray:
    """Read an MNIST image file as ``(N, 1, 28, 28)`` float32 in [0, 1]."""
    pixels = read_idx(path, _IMAGES_MAGIC)
    if pixels.shape[1:] != IMAGE_SHAPE:
        raise _format_error(
            path, f"has images of shape {pixels.shape[1:]}, expected {IMAGE_SHAPE}"
        )
    # float32 division is the exact quotient rounded once, like torchvision's ToTensor.
    return (pixels.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def _labels(path: Path, n_images: int) -> np.ndarray:
    """Read an MNIST label file as ``(N,)`` int64, checking its length and the range 0..9."""
    labels = read_idx(path, _LABELS_MAGIC)
    if len(labels) != n_images:
        raise _format_error(
            path, f"has {len(labels)} labels but its image file has {n_images} images"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        bad = int(labels.max()) if labels.max() > 9 else int(labels.min())
        raise _format_error(path, f"has label {bad}, expected digits 0..9")
    return labels.astype(np.int64)


def _freeze(array: np.ndarray) -> None:
    """Make an array and the arrays it views read-only, so the cache cannot be written through."""
    while isinstance(array, np.ndarray):
        array.flags.writeable = False
        array = array.base


def _read_bytes(path: Path) -> bytes:
    """Return the file's contents, gunzipped if it starts with the gzip signature."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(2)
            stream.seek(0)
            if head != b"\x1f\x8b":
                return stream.read()
            with gzip.GzipFile(fileobj=stream) as unzipped:
                return unzipped.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise _format_error(path, f"is not a valid gzip file ({error})") from error


def _format_error(path: Path, problem: str) -> DataFormatError:
    """Build the error for a corrupt IDX file, naming it and saying how to replace it."""
    if path.name in _MD5:
        fix = (
            f"Replace it with the original from {MIRROR}{path.name} "
            "(or delete it and load with download=True)."
        )
    else:
        fix = "Check that it is an IDX file (optionally gzip-compressed)."
    return DataFormatError(f"IDX file {path} {problem}. {fix}")
