"""``db.backup``: pg_dump's raw bytes streamed into local storage, complete or absent.

pg_dump and the manifest's row counts share one exported snapshot, so the counts
describe exactly the data in the dump.
"""
from __future__ import annotations

import errno
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from deploy.config.settings import Settings
from deploy.database.files import CHUNK, PartialWriter, check_label, new_name, sweep_partials, write_sidecars
from deploy.database.session import Database, SnapshotSession, parse_counts
from deploy.engine.commands import postgres as pg
from deploy.engine.facts import Container
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail

MAGIC = b"PGDMP"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size: int
    sha256: str
    seconds: float
    row_counts: dict[str, int]
    swept: list[Path]


def backups_dir(settings: Settings) -> Path:
    """BACKUPS_DIR/PROJECT/STAGE (BACKUPS_DIR relative to the repository unless absolute)."""
    base = Path(settings.config.database.backups_dir)
    if not base.is_absolute():
        base = settings.config.root / base
    return base / settings.stage.project / settings.stage.name


def _app_version(stack: Stack, containers: list[Container]) -> str:
    service = stack.settings.config.database.migrate_service
    versions = sorted({c.version for c in containers if c.service == service and c.state == "running"})
    return ", ".join(versions) or "not running"


def backup(
    stack: Stack,
    label: str | None = None,
    directory: Path | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> BackupResult:
    check_label(label)
    db = Database(stack)
    directory = directory or backups_dir(stack.settings)
    containers = stack.containers()
    db.require_running(containers)
    swept = sweep_partials(directory)
    app_version = _app_version(stack, containers)
    started_at = datetime.now(timezone.utc)
    started = time.monotonic()
    final = directory / new_name(db.name, started_at, label)

    session = SnapshotSession(db)
    try:
        session.ask("SET max_parallel_workers_per_gather = 0;")
        server_version = session.ask("SHOW server_version;").strip()
        # The counts run in the snapshot's session while pg_dump streams the same snapshot.
        with ThreadPoolExecutor(max_workers=1) as pool:
            counting = pool.submit(session.ask, pg.ROW_COUNTS_SQL)
            sha256, size = _dump(db, session.snapshot, final, progress)
            counts = parse_counts(counting.result())
    finally:
        session.close()

    seconds = time.monotonic() - started
    manifest = {
        "format": MANIFEST_FORMAT,
        "file": final.name,
        "project": stack.settings.stage.project,
        "stage": stack.settings.stage.name,
        "database": db.name,
        "server_version": server_version,
        "created_at": started_at.isoformat(timespec="seconds"),
        "size": size,
        "sha256": sha256,
        "duration_seconds": round(seconds, 3),
        "app_version": app_version,
        "label": label,
        "row_counts": counts,
    }
    write_sidecars(final, sha256, manifest)
    return BackupResult(final, size, sha256, seconds, counts, swept)


def _dump(db: Database, snapshot: str, final: Path, progress: Callable[[int], None]) -> tuple[str, int]:
    """Stream pg_dump into ``final`` (via .partial); returns (sha256, size)."""
    proc = db.spawn(pg.pg_dump(db.user, db.name, snapshot))
    try:
        with PartialWriter(final) as out:
            head = b""
            try:
                for chunk in iter(lambda: proc.stdout.read(CHUNK), b""):
                    if len(head) < len(MAGIC):
                        head += chunk[: len(MAGIC)]
                    out.write(chunk)
                    progress(out.size)
            except OSError as err:
                proc.kill()
                hint = "free space there, or pass --dir" if err.errno == errno.ENOSPC else "check the backups directory"
                fail(f"writing {out.partial} failed: {err.strerror}; nothing was kept", hint)
            code = proc.wait()
            if code != 0:
                fail(
                    f"pg_dump failed (exit {code}); nothing was kept:\n{last_lines(proc.stderr_text(), 5)}",
                    "see `inv logs postgres`; is the database reachable and the disk in the container fine?",
                )
            if not head.startswith(MAGIC):
                fail("pg_dump produced no archive; nothing was kept", "see `inv logs postgres`")
            return out.commit(), out.size
    finally:
        proc.kill()
