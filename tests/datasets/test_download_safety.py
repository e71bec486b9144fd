"""Dataset files with no data and no network: nothing is fetched, no empty cache folder is
left, a file without a mirror is not called "not downloaded", downloads get umask modes."""
from __future__ import annotations

import hashlib
import os
import socket
import stat
import urllib.request

import pytest

from optimus.datasets import files, mnist
from optimus.errors import DataNotFoundError


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    monkeypatch.delenv("OPTIMUS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_no_network_fetches_nothing_and_leaves_no_folder(no_data, monkeypatch):
    def offline(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def fetch(*args, **kwargs):
        raise AssertionError("urlopen must not be called without a network")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    monkeypatch.setattr(urllib.request, "urlopen", fetch)
    with pytest.raises(DataNotFoundError, match="no network") as info:
        mnist.load()
    assert "mnist/train-images-idx3-ubyte.gz" in str(info.value)
    assert not (no_data / "cache").exists()


def test_a_file_without_mirror_is_not_called_not_downloaded(no_data):
    spec = files.DataFile("sentiment/books/positive.review")
    with pytest.raises(DataNotFoundError) as info:
        files.find_file(spec, download=False)
    assert "no public mirror" in str(info.value)
    assert "not downloaded" not in str(info.value)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_downloads_get_the_mode_the_umask_gives(no_data, umask):
    source = no_data / "mirror" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(b"optimus" * 100)
    spec = files.DataFile("blobs/blob.bin", md5=hashlib.md5(source.read_bytes()).hexdigest(),
                          url=source.as_uri())
    old = os.umask(umask)
    try:
        path = files.find_file(spec, download=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
