"""Atomic file writes on this machine: one helper for every file we replace.

A reader sees the old file or the new one, never a part of one; after a crash there is
the old file or the new one (after a kill, maybe also a temp file ``NAME.XXXXXXXX.tmp``
beside it). A temp file is created exclusively with its final mode, so that it is never
readable more widely than ``mode``, not even for a moment, not even when it replaces a
file with a wider mode.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

StrPath = str | os.PathLike[str]


def fsync_dir(path: StrPath) -> None:
    """Make a rename in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(path: StrPath, mode: int) -> int:
    """A new file opened for writing (O_EXCL: never one that exists) with exactly ``mode``;
    the umask can only have made it narrower before the chmod."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd


def replace(source: StrPath, destination: StrPath) -> None:
    """Rename ``source`` over ``destination`` and make the rename durable."""
    os.replace(source, destination)
    fsync_dir(Path(destination).parent)


def write_atomic(path: StrPath, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: a new temp file beside it (``NAME.XXXXXXXX.tmp``)
    with ``mode``, written, fsynced, renamed over ``path``; then the directory is fsynced.
    The directory must exist. On an error the temp file is removed and ``path`` is untouched."""
    final = Path(path)
    while True:
        tmp = final.with_name(f"{final.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = create(tmp, mode)
        except FileExistsError:
            continue
        break
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_atomic(path: StrPath, data: bytes, mode: int = 0o600) -> None:
    """Add ``data`` (a line, or a few) at the end of ``path`` in one ``write(2)`` on a file
    opened with ``O_APPEND``, created with ``mode`` if missing, then fsynced: writers at
    the same time (threads, processes) never lose or mix each other's lines, as a read,
    change and rewrite of the file would. The directory must exist."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        written = os.write(fd, data)
        if written != len(data):  # a full disk: the file ends with part of a line
            raise OSError(f"only {written} of {len(data)} bytes appended to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
