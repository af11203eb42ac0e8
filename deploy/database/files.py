"""Backup files on local storage and the rules that make them trustworthy.

A backup ``DB-YYYYMMDDTHHMMSSZ[-label].dump`` is *complete* only when its sha256
sidecar (``.dump.sha256``, sha256sum format) and its manifest (``.dump.json``, written
last) exist. While being written it is ``.dump.partial``, held under an exclusive
lock; a partial whose lock is free belongs to a dead backup and is swept.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from deploy import atomic, validators
from deploy.errors import fail

NAME = re.compile(r"(?P<db>[A-Za-z0-9_.-]+?)-(?P<ts>\d{8}T\d{6}Z)(?:-(?P<label>[A-Za-z0-9._-]+))?\.dump")
TIMESTAMP = "%Y%m%dT%H%M%SZ"
CHUNK = 1 << 20
SIDECAR_MODE = 0o644  # checksums and manifests (the dump itself is 0600)


def sidecar_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".sha256")


def manifest_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".json")


def verified_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".verified.json")


def partial_path(dump: Path) -> Path:
    return dump.with_name(dump.name + ".partial")


def check_label(label: str | None) -> None:
    if label is not None:
        validators.label(label, "--label")


def new_name(db: str, when: datetime, label: str | None = None) -> str:
    check_label(label)
    return f"{db}-{when.astimezone(timezone.utc).strftime(TIMESTAMP)}{'-' + label if label else ''}.dump"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_sidecar(text: str, name: str) -> str | None:
    """The sha256 a sidecar's text records for the file ``name`` (None if it names another or is malformed)."""
    m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", text.strip())
    return m.group(1) if m and m.group(2) == name else None


def read_sidecar(dump: Path) -> str | None:
    """The sha256 recorded for ``dump`` (None without a well-formed sidecar naming it)."""
    try:
        text = sidecar_path(dump).read_text()
    except OSError:
        return None
    return parse_sidecar(text, dump.name)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class PartialWriter:
    """Writes a dump as ``.partial`` under a lock, hashing as it goes; ``commit`` fsyncs
    and renames it into place. Leaving the block without commit removes the partial."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = partial_path(final)
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._file: IO[bytes] | None = None

    def __enter__(self) -> PartialWriter:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.final.exists():
            fail(f"{self.final} already exists", "wait a second and try again, or use another --label")
        fd = atomic.create(self.partial, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file = os.fdopen(fd, "wb")
        return self

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "write() outside the with block"
        self._file.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def commit(self) -> str:
        assert self._file is not None, "commit() outside the with block"
        self._file.flush()
        os.fsync(self._file.fileno())
        atomic.replace(self.partial, self.final)
        self._file.close()
        self._file = None
        return self.sha256.hexdigest()

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self.partial.unlink(missing_ok=True)


def write_sidecars(dump: Path, sha256: str, manifest: dict[str, Any]) -> None:
    """The checksum, then the manifest: the last file written makes the backup complete."""
    atomic.write_atomic(sidecar_path(dump), f"{sha256}  {dump.name}\n".encode(), SIDECAR_MODE)
    atomic.write_atomic(manifest_path(dump), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(), SIDECAR_MODE)


def sweep_partials(directory: Path) -> list[Path]:
    """Remove ``.partial`` files no running backup holds (their writer died)."""
    swept = []
    for path in sorted(directory.glob("*.dump.partial")) if directory.is_dir() else ():
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a backup is writing it right now
        try:
            path.unlink(missing_ok=True)
            swept.append(path)
        finally:
            os.close(fd)
    return swept


@dataclass(frozen=True)
class Backup:
    path: Path
    created: datetime
    size: int
    complete: bool
    verified: bool
    label: str | None = None
    manifest: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def sha256(self) -> str | None:
        return read_sidecar(self.path)


def scan(directory: Path) -> list[Backup]:
    """Every backup in ``directory``, newest first (partials are not backups)."""
    found = []
    for path in directory.glob("*.dump") if directory.is_dir() else ():
        m = NAME.fullmatch(path.name)
        if not m:
            continue
        sha = read_sidecar(path)
        manifest = read_json(manifest_path(path))
        record = read_json(verified_path(path)) or {}
        found.append(
            Backup(
                path=path,
                created=datetime.strptime(m.group("ts"), TIMESTAMP).replace(tzinfo=timezone.utc),
                size=path.stat().st_size,
                complete=bool(sha and manifest and manifest.get("sha256") == sha),
                verified=bool(sha and record.get("sha256") == sha and record.get("ok")),
                label=m.group("label"),
                manifest=manifest,
            )
        )
    return sorted(found, key=lambda b: (b.created, b.path.name), reverse=True)


def delete(backup: Backup) -> None:
    """Manifest first (the backup stops being complete), then the rest."""
    for path in (manifest_path(backup.path), verified_path(backup.path), sidecar_path(backup.path), backup.path):
        path.unlink(missing_ok=True)
