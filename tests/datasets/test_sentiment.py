"""Tests of optimus.datasets.sentiment against the LXMLS books corpus in $OPTIMUS_DATA.

Run with OPTIMUS_DATA=../shared/data; the corpus has no mirror, so nothing is ever downloaded.
"""

from pathlib import Path

import numpy as np
import pytest

from optimus.datasets import sentiment
from optimus.errors import ConfigError, DataFormatError, DataNotFoundError

N_FEATURES = 13_989


@pytest.fixture(scope="module")
def corpus(data_root):
    return sentiment.load("books")


@pytest.fixture()
def empty_env(tmp_path, monkeypatch) -> Path:
    """Point $OPTIMUS_DATA and the cache folder at empty folders so only data_dir can match."""
    monkeypatch.setenv("OPTIMUS_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def _raw_review(data_root: Path, polarity: str, index: int) -> dict[str, int]:
    """Parse one review line directly, independently of the code under test."""
    path = data_root / "sentiment" / "books" / f"{polarity}.review"
    with open(path, encoding="utf-8") as stream:
        for i, line in enumerate(stream):
            if i == index:
                tokens = line.split()
                assert tokens[-1] == f"#label#:{polarity}"
                return {t.rsplit(":", 1)[0]: int(t.rsplit(":", 1)[1]) for t in tokens[:-1]}
    raise AssertionError(f"{path} has no line {index}")


def test_shapes_dtypes_and_split(corpus):
    (X_train, y_train), (X_test, y_test) = corpus
    assert X_train.shape == (1_600, N_FEATURES) and X_test.shape == (400, N_FEATURES)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.shape == (1_600,) and y_test.shape == (400,)
    assert y_train.dtype == y_test.dtype == np.int64


def test_labels_interleave_and_balance(corpus):
    (_, y_train), (_, y_test) = corpus
    assert y_train[:6].tolist() == [0, 1, 0, 1, 0, 1]
    y = np.concatenate([y_train, y_test])
    np.testing.assert_array_equal(y, np.tile([0, 1], 1_000))
    assert np.bincount(y_train).tolist() == [800, 800]
    assert np.bincount(y_test).tolist() == [200, 200]


def test_feature_names(data_root):
    names = sentiment.feature_names("books")
    assert len(names) == N_FEATURES == len(set(names))
    # Order of first appearance: the first review's frequent features come first.
    assert names[:6] == ("holes", "must", "he", "center", "a_lot", "this_book")


def test_values_are_counts_of_frequent_features(corpus):
    (X_train, _), (X_test, _) = corpus
    X = np.concatenate([X_train, X_test])
    assert (X >= 0).all() and np.array_equal(X, np.round(X))
    assert (X.sum(axis=0) >= sentiment.MIN_COUNT).all()  # no feature seen fewer than 5 times
    assert (X.sum(axis=1) > 0).all()  # every review keeps some features
    assert X.max() == 61 and X.sum() == 318_224


@pytest.mark.parametrize(("split", "row", "polarity", "line"), [
    (0, 0, "positive", 0), (0, 1, "negative", 0), (0, 3, "negative", 1),
    (0, 1_599, "negative", 799), (1, 0, "positive", 800), (1, 399, "negative", 999),
])
def test_rows_match_raw_reviews(corpus, data_root, split, row, polarity, line):
    names = sentiment.feature_names("books")
    expected = np.zeros(len(names), dtype=np.float32)
    column = {name: j for j, name in enumerate(names)}
    for name, count in _raw_review(data_root, polarity, line).items():
        if name in column:
            expected[column[name]] = count
    X = corpus[split][0]
    np.testing.assert_array_equal(X[row], expected)


def test_arrays_are_read_only(corpus):
    (X_train, y_train), _ = corpus
    with pytest.raises(ValueError):
        X_train[0, 0] = 1.0
    with pytest.raises(ValueError):
        y_train[0] = 1


def test_missing_files_error_names_both_files(tmp_path, empty_env):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as info:
        sentiment.load("books", data_dir=empty)
    message = str(info.value)
    assert "sentiment/books/positive.review" in message
    assert "sentiment/books/negative.review" in message
    for folder in (empty, tmp_path / "env", tmp_path / "cache" / "optimus"):
        assert str(folder.absolute()) in message
    assert "OPTIMUS_DATA" in message
    assert isinstance(info.value, FileNotFoundError)


def test_unknown_domain(data_root):
    with pytest.raises(ConfigError, match="'movies'.*books"):
        sentiment.load("movies")


def test_malformed_line_names_file_and_line(tmp_path, empty_env):
    folder = tmp_path / "data" / "sentiment" / "books"
    folder.mkdir(parents=True)
    (folder / "positive.review").write_text("good:2 great:5 #label#:positive\n", encoding="utf-8")
    negative = "bad:3 #label#:negative\nawful #label#:negative\n"
    (folder / "negative.review").write_text(negative, encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2") as info:
        sentiment.load("books", data_dir=tmp_path / "data")
    assert str(folder / "negative.review") in str(info.value)
    assert "'awful'" in str(info.value)


def test_small_corpus_rules(tmp_path, empty_env):
    # Hand-made corpus: threshold 5 on the total count, first-appearance order, interleaving.
    folder = tmp_path / "data" / "sentiment" / "books"
    folder.mkdir(parents=True)
    pos = ["b:1 a:4 rare:1 #label#:positive", "a:1 c:3 #label#:positive", "b:4 #label#:positive"]
    neg = ["c:2 b:1 #label#:negative", "d:4 #label#:negative", "rare:3 a:1 #label#:negative"]
    (folder / "positive.review").write_text("\n".join(pos) + "\n", encoding="utf-8")
    (folder / "negative.review").write_text("\n".join(neg) + "\n", encoding="utf-8")
    (X_train, y_train), (X_test, y_test) = sentiment.load("books", data_dir=tmp_path / "data")
    # totals: b 6, a 6, rare 4 (dropped), c 5, d 4 (dropped)
    assert sentiment.feature_names("books", data_dir=tmp_path / "data") == ("b", "a", "c")
    X = np.concatenate([X_train, X_test])
    expected = [[1, 4, 0], [1, 0, 2], [0, 1, 3], [0, 0, 0], [4, 0, 0], [0, 1, 0]]
    np.testing.assert_array_equal(X, expected)
    assert y_train.tolist() == [0, 1, 0, 1] and y_test.tolist() == [0, 1]  # int(6 * 0.8) = 4
