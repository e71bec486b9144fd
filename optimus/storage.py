"""Files on disk: atomic writes, parameter files read header-first, and consistent pairs.

- `atomic_write`: a temporary file in the same folder, fsynced and renamed over the target, so
  a crash leaves the old file or the new one. Temporaries are hidden (``.name.<random>.tmp``)
  and `clean_temporaries` removes those a killed writer left behind.
- `read_npz`: every member's ``.npy`` header (shape, dtype) is read and checked (against the
  expected shapes and the parameter cap) before any data is; object arrays, members that
  are not ``.npy`` data and truncated members raise `FormatError`. Nothing is unpickled.
- `commit_pair`: the definition/parameter pair of `optimus.save`. The parameters are written
  first, the definition last, and the definition records the sha256 of its parameter file.
  While a save replaces the parameter file, the previous one stays reachable (hard link
  ``.params.npz.<digest>.prev``) until the new definition is in place, so `pair_params`
  finds, after a crash at any instant, the parameter file its definition was saved with:
  the old pair or the new pair, never a mix.
"""
from __future__ import annotations

import hashlib
import math
import os
import secrets
import stat
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import numpy as np

from .errors import FormatError

PathLike = str | os.PathLike
NUMERIC_KINDS = "iuf"  # int, uint, float: what a parameter may be read from


# -- atomic files -----------------------------------------------------------------------------
def create_temporary(path: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a new, empty file next to ``path`` with a random name, as ``open(..., 'w')``
    would create ``path``: mode 0o666 filtered by the process umask (and any default ACL) by
    the kernel itself, so the umask is never read or changed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: could not create a temporary file next to it")


def _write_temporary(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """A fsynced temporary file next to ``path`` holding what ``write`` wrote, with the mode
    ``path`` has (or would get from ``open``)."""
    fd, tmp = create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as fileobj:
            try:
                os.chmod(fileobj.fileno() if os.chmod in os.supports_fd else tmp,
                         stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass  # a new file: the mode the kernel gave the temporary one
            write(fileobj)
            fileobj.flush()
            os.fsync(fileobj.fileno())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sync_folder(folder: Path) -> None:
    """Make renames in ``folder`` durable (where the platform can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(fileobj)`` all-or-nothing: a temporary file in the same
    folder is flushed, fsynced and renamed over ``path``.

    The file gets the permissions a plain ``open(path, 'w')`` would give it: an existing
    file keeps its mode; a new one gets 0o666 less the umask (0o644 under the usual 0o022).
    """
    path = Path(path)
    tmp = _write_temporary(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def clean_temporaries(path: PathLike) -> None:
    """Remove the temporaries a killed writer of ``path`` left (``.name.<hex>.tmp``)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        _unlink(tmp)


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# -- parameter files ----------------------------------------------------------------------------
def _header(member: IO[bytes], source: str, key: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of one ``.npy`` member, from its header alone."""
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, tokenize.TokenError,
            KeyError, RecursionError, MemoryError) as err:
        raise FormatError(f"{source}: member '{key}' is not .npy array data ({err}); re-save "
                          f"the file with optimus.save or numpy.savez") from None
    return tuple(shape), dtype, member.tell()


def read_npz(path: PathLike, expected: Mapping[str, tuple[int, ...]] | None = None,
             max_values: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, each member's header checked before its data is read.

    Args:
        expected: ``{key: shape}``: only these keys are read (others are skipped unread and
            reported by the caller), each must have its shape. None: read every member.
        max_values: refuse the file if the arrays to read hold more values than this.

    Raises:
        FormatError: not a zip, a member that is not ``.npy`` data, an object or non-numeric
            dtype, a shape other than expected, a truncated member, or over ``max_values``.
    """
    source = str(path)
    try:
        with open(path, "rb") as fileobj, zipfile.ZipFile(fileobj) as archive:
            plan = _plan_reads(archive, source, expected, max_values)
            arrays = {}
            for key, info in plan:
                with archive.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
            return arrays
    except FormatError:
        raise
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError,
            RuntimeError, zlib.error, struct.error, MemoryError) as err:
        hint = " (a single .npy array, not an .npz of parameters)" if _is_npy(path) else ""
        raise FormatError(f"{source}: not a readable .npz parameter file{hint} ({err}); "
                          f"re-save it with optimus.save") from None


def _is_npy(path: PathLike) -> bool:
    try:
        with open(path, "rb") as fileobj:
            return fileobj.read(6) == b"\x93NUMPY"
    except OSError:
        return False


def _plan_reads(archive: zipfile.ZipFile, source: str,
                expected: Mapping[str, tuple[int, ...]] | None, max_values: int | None
                ) -> list[tuple[str, zipfile.ZipInfo]]:
    """The members to read, once every header has been checked."""
    plan, seen, total = [], set(), 0
    for info in archive.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise FormatError(f"{source}: member {name!r} is not a .npy array; a parameter "
                              f"file holds only arrays (numpy.savez writes name.npy members)")
        key = name[:-len(".npy")]
        if key in seen:
            raise FormatError(f"{source}: the array '{key}' appears twice")
        seen.add(key)
        if expected is not None and key not in expected:
            continue  # unused: never read
        with archive.open(info) as member:
            shape, dtype, offset = _header(member, source, key)
        if dtype.hasobject or (expected is not None and (dtype.kind not in NUMERIC_KINDS
                                                         or dtype.fields is not None)):
            raise FormatError(f"{source}: array '{key}' has dtype {dtype}; parameter files hold "
                              f"plain numbers (no objects, no pickles)")
        if expected is not None and shape != tuple(expected[key]):
            raise FormatError(f"{source}: array '{key}' has shape {shape}, the definition "
                              f"expects {tuple(expected[key])}")
        values = math.prod(shape)
        if offset + values * dtype.itemsize > info.file_size:
            raise FormatError(f"{source}: array '{key}' declares shape {shape} ({dtype}) but "
                              f"its member holds only {info.file_size:,} bytes: the file is "
                              f"truncated or corrupt")
        total += values
        if max_values is not None and total > max_values:
            raise FormatError(f"{source}: array '{key}' of shape {shape} brings the file to "
                              f"{total:,} values, over the limit of {max_values:,} "
                              f"(max_params); raise it if you trust this file")
        plan.append((key, info))
    return plan


def write_npz(path: PathLike, values: Mapping[str, np.ndarray]) -> None:
    """Write ``{name: array}`` to an ``.npz`` file, atomically."""
    arrays = {k: np.asarray(v) for k, v in values.items()}
    atomic_write(path, lambda f: np.savez(f, **arrays))


# -- consistent pairs -----------------------------------------------------------------------------
def sha256(path: PathLike) -> str:
    """The hex sha256 of a file's bytes."""
    with open(path, "rb") as fileobj:
        return hashlib.file_digest(fileobj, "sha256").hexdigest()


def _backup(param_file: Path, digest: str) -> Path:
    return param_file.parent / f".{param_file.name}.{digest[:32]}.prev"


def commit_pair(def_file: PathLike, definition: Callable[[str], bytes], param_file: PathLike,
                values: Mapping[str, np.ndarray], previous_digest: str | None) -> None:
    """Write a parameter file, then the definition that records its digest, so that a crash
    at any instant leaves a pair `pair_params` resolves to the old or the new save.

    Args:
        definition: the definition's bytes, given the new parameter file's sha256.
        previous_digest: the digest the current definition records for ``param_file`` (its
            parameter file stays reachable under that digest until the new definition is in
            place); None when there is no such definition.
    """
    def_file, param_file = Path(def_file), Path(param_file)
    for path in (def_file, param_file):
        clean_temporaries(path)
    arrays = {k: np.asarray(v) for k, v in values.items()}
    tmp = _write_temporary(param_file, lambda f: np.savez(f, **arrays))
    try:
        digest = sha256(tmp)
        if previous_digest and param_file.exists() and previous_digest != digest:
            backup = _backup(param_file, previous_digest)
            if not backup.exists():
                _link_or_copy(param_file, backup)
        os.replace(tmp, param_file)
    except BaseException:
        _unlink(tmp)
        raise
    _sync_folder(param_file.parent)
    text = definition(digest)
    atomic_write(def_file, lambda f: f.write(text))
    _sync_folder(def_file.parent)
    for stale in param_file.parent.glob(f".{glob_escape(param_file.name)}.*.prev"):
        _unlink(stale)


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` holding ``source``'s bytes: a hard link, or a copy where links fail."""
    try:
        os.link(source, target)
    except OSError:
        tmp = _write_temporary(target, lambda f: f.write(source.read_bytes()))
        os.replace(tmp, target)


def pair_params(param_file: PathLike, digest: str, def_file: PathLike) -> Path:
    """The parameter file whose sha256 is ``digest``: ``param_file`` itself, or the previous
    version a save interrupted between its two renames kept next to it.

    Raises:
        FormatError: neither matches: the parameter file was written by another save.
    """
    param_file = Path(param_file)
    if sha256(param_file) == digest:
        return param_file
    backup = _backup(param_file, digest)
    if backup.exists() and sha256(backup) == digest:
        return backup
    raise FormatError(f"{param_file}: not the parameter file {def_file} was saved with (its "
                      f"sha256 differs from the one the definition records): they come from "
                      f"different saves. Save both again with optimus.save(graph, definition, "
                      f"params), or load them anyway with optimus.load(..., check_pair=False)")


__all__ = ["atomic_write", "create_temporary", "clean_temporaries", "read_npz", "write_npz", "sha256",
           "commit_pair", "pair_params", "NUMERIC_KINDS"]
