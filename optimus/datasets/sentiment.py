"""The Amazon product-review sentiment corpus (Blitzer et al. 2007) as the LXMLS toolkit builds it.

Files: ``sentiment/<domain>/positive.review`` and ``negative.review`` under a data folder (see
`optimus.datasets.files`); one review a line, ``feature:count ... #label#:positive|negative``.
There is no public mirror: the files must be supplied (the LXMLS toolkit ships them).

The corpus, as LXMLS's ``SentimentCorpus(domain)`` makes it:

- features are the names whose total count over both files is at least 5, numbered in order
  of first appearance (positive file first); 13,989 for ``books``;
- ``X[i, f]`` is the count of feature ``f`` in review ``i`` (other features are dropped);
- labels: positive 0, negative 1; rows alternate positive, negative (pos 0, neg 0, pos 1, ...);
- the first 80 % of rows are the training set (1,600 for ``books``), the rest the test set.

Arrays are cached per process and returned **read-only** (copy them to modify them).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from optimus.datasets.files import DataFile, find_files
from optimus.errors import ConfigError, DataFormatError

__all__ = [
    "DOMAINS", "MIN_COUNT", "TRAIN_FRACTION", "Split", "data_files", "load", "feature_names",
]

#: The corpus's four product domains; each is a separate dataset.
DOMAINS = ("books", "dvd", "electronics", "kitchen")
#: A word is a feature when its total count over both files is at least this.
MIN_COUNT = 5
#: The share of rows (from the start) that form the training set.
TRAIN_FRACTION = 0.8
LABELS = {"positive": 0, "negative": 1}

# md5 of the LXMLS copies; used when the files are fetched, not when read (no public mirror).
_MD5 = {
    "books": {
        "positive": "9a59323a29e9731c29b7b863ad245dad",
        "negative": "42de87e8e747122178ff88bbee5afc14",
    },
}

#: One split: ``(X, y)``.
Split = tuple[np.ndarray, np.ndarray]
_Corpus = tuple[Split, Split, tuple[str, ...]]  # train, test, feature names
_FileKey = tuple[str, int, int]  # path, mtime, size


def data_files(domain: str = "books") -> tuple[DataFile, DataFile]:
    """Return the two data files of a domain (positive, negative), to locate or document them."""
    _check_domain(domain)
    md5 = _MD5.get(domain, {})
    return tuple(  # type: ignore[return-value]
        DataFile(f"sentiment/{domain}/{polarity}.review", md5.get(polarity)) for polarity in LABELS
    )


def load(
    domain: str = "books", data_dir: str | os.PathLike[str] | None = None
) -> tuple[Split, Split]:
    """Load the LXMLS bag-of-words sentiment corpus as ``(train, test)`` NumPy splits.

    Args:
        domain: one of ``books``, ``dvd``, ``electronics``, ``kitchen``.
        data_dir: a folder holding ``sentiment/<domain>/*.review``, searched before
            ``$OPTIMUS_DATA`` and the user cache folder.

    Returns:
        ``(train, test)``, each ``(X, y)``: X ``(N, n_features)`` float32 feature counts, y
        ``(N,)`` int64 (0 positive, 1 negative). For books: 1,600 and 400 rows, 13,989
        features (names from `feature_names`). Read-only arrays from a per-process cache.

    Raises:
        ConfigError: unknown domain.
        DataNotFoundError: a review file is missing; the message names both and where to put them.
        DataFormatError: a line is malformed; the message names the file and line.
    """
    corpus = _corpus(domain, data_dir)
    return corpus[0], corpus[1]


def feature_names(
    domain: str = "books", data_dir: str | os.PathLike[str] | None = None
) -> tuple[str, ...]:
    """Return the names of X's columns, in column order, to interpret weights or rows."""
    return _corpus(domain, data_dir)[2]


def _corpus(domain: str, data_dir: str | os.PathLike[str] | None) -> _Corpus:
    """Locate the files and build (or fetch from the cache) the corpus."""
    _check_domain(domain)
    positive, negative = find_files(data_files(domain), data_dir, download=False)
    return _build(_file_key(positive), _file_key(negative))


def _check_domain(domain: str) -> None:
    """Reject a domain LXMLS does not have, listing the ones it has."""
    if domain not in DOMAINS:
        raise ConfigError(
            f"sentiment domain {domain!r} does not exist; use one of {DOMAINS}", field="domain"
        )


def _file_key(path: Path) -> _FileKey:
    """Return (path, mtime, size): a replaced file is read again, not served from the cache."""
    stat = path.stat()
    return str(path.absolute()), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=2)
def _build(positive_key: _FileKey, negative_key: _FileKey) -> _Corpus:
    """Parse both files, keep frequent features, interleave rows and split; arrays read-only."""
    pos_rows = _read_reviews(Path(positive_key[0]), "positive")
    neg_rows = _read_reviews(Path(negative_key[0]), "negative")

    totals: dict[str, int] = {}  # insertion order = order of first appearance
    for rows in (pos_rows, neg_rows):
        for row in rows:
            for name, count in row:
                totals[name] = totals.get(name, 0) + count
    names = tuple(name for name, total in totals.items() if total >= MIN_COUNT)
    column = {name: j for j, name in enumerate(names)}

    order = _interleave(len(pos_rows), len(neg_rows))
    all_rows = pos_rows + neg_rows
    X = np.zeros((len(order), len(names)), dtype=np.float32)
    y = np.empty(len(order), dtype=np.int64)
    for i, source in enumerate(order):
        y[i] = LABELS["positive"] if source < len(pos_rows) else LABELS["negative"]
        for name, count in all_rows[source]:
            j = column.get(name)
            if j is not None:
                X[i, j] = count  # assignment, as LXMLS: a repeated feature keeps its last count

    n_train = int(len(order) * TRAIN_FRACTION)
    X.flags.writeable = False
    y.flags.writeable = False
    return (X[:n_train], y[:n_train]), (X[n_train:], y[n_train:]), names


def _interleave(n_pos: int, n_neg: int) -> list[int]:
    """Return row indices alternating positive and negative (offset by n_pos), then the rest.

    With equal counts (the shipped domains: 1,000 each) this is exactly LXMLS's mixing.
    """
    order: list[int] = []
    for k in range(max(n_pos, n_neg)):
        if k < n_pos:
            order.append(k)
        if k < n_neg:
            order.append(n_pos + k)
    return order


def _read_reviews(path: Path, polarity: str) -> list[list[tuple[str, int]]]:
    """Read one ``.review`` file as a list of reviews, each a list of (feature, count)."""
    reviews: list[list[tuple[str, int]]] = []
    with open(path, encoding="utf-8") as stream:
        for lineno, line in enumerate(stream, start=1):
            tokens = line.split()
            if not tokens or tokens[-1] != f"#label#:{polarity}":
                found = repr(tokens[-1]) if tokens else "an empty line"
                raise _format_error(
                    path, lineno, f"should end with '#label#:{polarity}', found {found}"
                )
            row: list[tuple[str, int]] = []
            for token in tokens[:-1]:
                name, sep, count = token.rpartition(":")
                if not sep or not name or not count.isdigit():
                    raise _format_error(
                        path, lineno, f"has token {token!r}, expected 'feature:count'"
                    )
                row.append((name, int(count)))
            reviews.append(row)
    return reviews


def _format_error(path: Path, lineno: int, problem: str) -> DataFormatError:
    """Build the error for a malformed review line, naming the file and line."""
    return DataFormatError(
        f"{path}, line {lineno}: {problem}. Each line must be "
        "'feature:count ... #label#:positive' (or negative); replace the file with the copy "
        "shipped with the LXMLS toolkit."
    )
