"""Locate dataset files on disk and, when allowed, fetch missing ones from a mirror.

A dataset file is named by its path relative to a data folder, e.g.
``mnist/train-images-idx3-ubyte.gz``. It is looked up, in order, under

1. the ``data_dir`` argument,
2. the folder named by the ``OPTIMUS_DATA`` environment variable,
3. the user cache folder, ``$XDG_CACHE_HOME/optimus`` or else ``~/.cache/optimus``.

A file found nowhere is downloaded into the cache folder when ``download=True`` and the file has
a known mirror; the bytes are checked against the file's md5 before the file appears (written to a
temporary file in the same folder, fsynced, then renamed), so an interrupted or corrupt download
never leaves a half file under the real name. Files found on disk are used as they are: their
checksums are not recomputed on every load (the parsers validate their structure instead).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from optimus.errors import DataNotFoundError
from optimus.storage import create_temporary

__all__ = ["DataFile", "ENV_VAR", "cache_dir", "search_dirs", "find_file", "find_files", "md5sum"]

ENV_VAR = "OPTIMUS_DATA"
DOWNLOAD_TIMEOUT_S = 60.0

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFile:
    """A dataset file: its path relative to a data folder, its md5 and its mirror URL, if any."""

    relpath: str
    md5: str | None = None
    url: str | None = None  # None: no public mirror, the user must supply the file


def cache_dir() -> Path:
    """Return the user cache folder for optimus data, where downloads go."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "optimus"


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[tuple[Path, str]]:
    """Return the folders searched for data files, in order, each with where it came from."""
    found: list[tuple[Path, str]] = []
    if data_dir is not None:
        found.append((Path(data_dir).expanduser(), "data_dir argument"))
    env = os.environ.get(ENV_VAR, "")
    if env:
        found.append((Path(env).expanduser(), f"${ENV_VAR}"))
    found.append((cache_dir(), "user cache folder"))
    unique: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for folder, origin in found:
        key = folder.absolute()
        if key not in seen:
            seen.add(key)
            unique.append((folder, origin))
    return unique


def md5sum(path: str | os.PathLike[str]) -> str:
    """Return the hex md5 of a file, to compare with a published checksum."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def find_file(
    file: str | DataFile,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
) -> Path:
    """Return the path of one dataset file, searching the data folders (downloading if allowed).

    Args:
        file: the path relative to a data folder, or a `DataFile` that also gives md5 and mirror.
        data_dir: a folder searched before ``$OPTIMUS_DATA`` and the cache folder.
        download: fetch a missing file with a mirror into the cache folder.

    Raises:
        DataNotFoundError: the file is in none of the folders and could not be downloaded.
    """
    return find_files([file], data_dir, download=download)[0]


def find_files(
    files: Sequence[str | DataFile],
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
) -> list[Path]:
    """Return the paths of several dataset files, reporting every missing one in a single error.

    Each file is looked up on its own, so files may sit in different folders. Missing files are
    downloaded (when ``download`` is true and they have a mirror) into the cache folder.

    Raises:
        DataNotFoundError: some files are missing everywhere and could not be downloaded; the
            message names each of them, each folder searched and what to do.
    """
    specs = [f if isinstance(f, DataFile) else DataFile(str(f)) for f in files]
    folders = search_dirs(data_dir)
    paths: list[Path | None] = [_lookup(spec.relpath, folders) for spec in specs]

    failures: dict[str, str] = {}
    unreachable: dict[str, str | None] = {}  # host -> why it cannot be reached (None: it can)
    for i, spec in enumerate(specs):
        if paths[i] is not None:
            continue
        if spec.url is None:
            failures[spec.relpath] = "no public mirror: it must be supplied by hand"
        elif not download:
            failures[spec.relpath] = "not downloaded (download=False)"
        elif (offline := _unreachable(spec.url, unreachable)) is not None:
            failures[spec.relpath] = f"not downloaded: no network ({offline})"
        else:
            target = cache_dir() / spec.relpath
            try:
                _download(spec.url, target, spec.md5)
            except (OSError, ValueError, http.client.HTTPException) as error:
                failures[spec.relpath] = f"download from {spec.url} failed: {error}"
            else:
                paths[i] = target

    if failures:
        raise _not_found(failures, folders)
    return [p for p in paths if p is not None]


def _unreachable(url: str, known: dict[str, str | None]) -> str | None:
    """Why ``url``'s host cannot be reached (its name does not resolve), or None; asked once
    per host, so that with no network nothing is fetched and no cache folder is created."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host:
        return None  # a local URL (file://): nothing to resolve
    if host not in known:
        try:
            socket.getaddrinfo(host, None)
            known[host] = None
        except (OSError, UnicodeError) as error:
            known[host] = f"cannot resolve {host}: {error}"
    return known[host]


def _lookup(relpath: str, folders: list[tuple[Path, str]]) -> Path | None:
    """Return the first existing ``folder / relpath``, or None."""
    for folder, _ in folders:
        candidate = folder / relpath
        if candidate.is_file():
            return candidate
    return None


def _not_found(failures: dict[str, str], folders: list[tuple[Path, str]]) -> DataNotFoundError:
    """Build the error that names every missing file, every folder searched and the fix."""
    lines = [f"{len(failures)} dataset file(s) not found:"]
    lines += [f"  - {relpath}: {why}" for relpath, why in failures.items()]
    lines.append("Folders searched, in order:")
    lines += [f"  - {folder.absolute()} ({origin})" for folder, origin in folders]
    if not os.environ.get(ENV_VAR):
        lines.append(f"  (${ENV_VAR} is not set)")
    example = next(iter(failures))
    lines.append(
        "To fix: copy the files into one of these folders keeping their relative paths "
        f"(e.g. {folders[0][0].absolute() / example}), or set {ENV_VAR} to a folder that "
        "holds them, or pass data_dir=...; files with a mirror are fetched with download=True."
    )
    error = DataNotFoundError("\n".join(lines))
    error.missing = tuple(failures)  # type: ignore[attr-defined]
    error.searched = tuple(folder for folder, _ in folders)  # type: ignore[attr-defined]
    return error


def _download(
    url: str, target: Path, md5: str | None, timeout: float = DOWNLOAD_TIMEOUT_S
) -> None:
    """Fetch ``url`` to ``target`` atomically, checking its md5 before the file appears; the
    file gets the permissions ``open`` would give it (0o666 less the umask). Folders created
    for it are removed again when the download fails."""
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    _log.info("downloading %s to %s", url, target)
    try:
        fd, tmp_name = create_temporary(target, suffix=".part")
    except BaseException:
        _remove_empty(created)
        raise
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise ValueError(
                f"md5 is {digest.hexdigest()}, expected {md5}; the file was discarded"
            )
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        _remove_empty(created)
        raise
    _fsync_dir(target.parent)


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a failed download created (innermost first), if still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
