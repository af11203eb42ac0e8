"""``db.verify`` and ``db.restore``: prove a backup restorable; restore without ever
leaving less than there was.

A restore goes into a scratch database first; only when that restore succeeded and
its row counts match the manifest is it swapped in (two renames in one transaction),
after a safety backup of the current database. Any failure before the swap leaves the
current database untouched.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from deploy.atomic import write_atomic
from deploy.database import files as backups
from deploy.database.dump import BackupResult, backup, backups_dir
from deploy.database.session import Database
from deploy.engine.commands import compose
from deploy.engine.commands import postgres as pg
from deploy.engine.ops import Executor
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.stack.rollout import admit

UNSAFE = re.compile(r"[^A-Za-z0-9._/@+-]")
MAX_IDENT = 63


def locate(stack: Stack, arg: str) -> Path:
    """The backup file meant by ``arg``: ``latest`` (the newest complete backup), a name
    in the stage's backups directory, or an explicit path that exists. ``..`` and shell
    characters are refused outright."""
    directory = backups_dir(stack.settings)
    if arg == "latest":
        complete = [b for b in backups.scan(directory) if b.complete]
        if not complete:
            fail(f"no complete backup in {directory}", "take one: inv db.backup")
        return complete[0].path
    if ".." in Path(arg).parts or UNSAFE.search(arg):
        fail(f"refusing the path {arg!r}: '..' and shell characters are not allowed", "give a plain name from `inv db.list` or a plain path")
    given = Path(arg)
    if given.is_file():
        return given.resolve()
    if "/" not in arg and (directory / arg).is_file():
        return directory / arg
    fail(f"backup {arg!r} not found (looked in {directory} and at the path as given)", "see `inv db.list`")


def check_integrity(path: Path) -> dict[str, Any]:
    """Checksum against the sidecar, and the manifest present; returns the manifest."""
    expected = backups.read_sidecar(path)
    if expected is None:
        fail(f"{path.name} has no valid checksum sidecar ({path.name}.sha256): not a complete backup", "use a complete backup (inv db.list)")
    actual = backups.sha256_file(path)
    if actual != expected:
        fail(f"{path.name} is corrupt: sha256 {actual[:16]}... but the sidecar says {expected[:16]}...", "use another backup (inv db.list)")
    manifest = backups.read_json(backups.manifest_path(path))
    if not manifest or manifest.get("sha256") != actual:
        fail(f"{path.name} has no manifest matching it: not a complete backup", "use a complete backup (inv db.list)")
    return manifest


def _explain_restore_error(stderr: str, manifest: dict[str, Any] | None) -> tuple[str, str]:
    if "unsupported version" in stderr:
        made_by = (manifest or {}).get("server_version", "a newer server")
        return ("the archive was written by a newer pg_dump than this server's pg_restore can read",
                f"restore it on PostgreSQL {made_by} or newer (set POSTGRES_IMAGE)")
    if "does not appear to be a valid archive" in stderr or "did not find magic string" in stderr:
        return ("the file is not a pg_dump custom-format archive", "give a file made by inv db.backup")
    if "end of file" in stderr or "could not read" in stderr:
        return ("the archive is truncated", "use another backup (inv db.list)")
    return (f"pg_restore failed: {last_lines(stderr, 4)}", "see the error above and `inv logs postgres`")


def _feed(db: Database, argv: Sequence[str], path: Path, manifest: dict[str, Any] | None) -> None:
    """Run argv in the database container with the archive on its stdin."""
    proc = db.spawn(argv, stdin=True)
    try:
        assert proc.stdin is not None
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(backups.CHUNK), b""):
                proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it stopped reading: its exit status and stderr say why
    code = proc.wait()
    if code != 0:
        reason, fix = _explain_restore_error(proc.stderr_text(), manifest)
        fail(f"{path.name}: {reason}", fix)


def scratch_name(db: str, purpose: str) -> str:
    suffix = f"_{purpose}_{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')}"
    return db[: MAX_IDENT - len(suffix)] + suffix


def count_mismatches(expected: dict[str, int], actual: dict[str, int]) -> list[str]:
    out = []
    for table in sorted(set(expected) | set(actual)):
        if expected.get(table) != actual.get(table):
            out.append(f"{table}: manifest {expected.get(table, 'absent')}, restored {actual.get(table, 'absent')}")
    return out


def _restore_into_scratch(db: Database, path: Path, manifest: dict[str, Any], purpose: str) -> str:
    """Create a scratch database, restore into it, compare row counts; returns its name.
    On any failure the scratch database is dropped again."""
    name = scratch_name(db.name, purpose)
    db.query(f"CREATE DATABASE {pg.ident(name)} OWNER {pg.ident(db.user)}", "postgres")
    try:
        _feed(db, pg.pg_restore_into(db.user, name), path, manifest)
        mismatches = count_mismatches(manifest.get("row_counts", {}), db.row_counts(name))
        if mismatches:
            fail(f"{path.name}: restored row counts differ from the manifest: {'; '.join(mismatches)}", "use another backup")
    except BaseException:
        drop_database(db, name)
        raise
    return name


def drop_database(db: Database, name: str) -> None:
    db.query(f"DROP DATABASE IF EXISTS {pg.ident(name)} WITH (FORCE)", "postgres")


@dataclass
class VerifyReport:
    path: Path
    sha256: str
    checks: list[str] = field(default_factory=list)
    tables: int = 0
    rows: int = 0


def verify(stack: Stack, path: Path, restore_test: bool = False) -> VerifyReport:
    """Checksum, a full read of the archive, and optionally a restore into a scratch
    database compared with the manifest. Records the result beside the backup."""
    manifest = check_integrity(path)
    report = VerifyReport(path, manifest["sha256"], ["checksum"])
    db = Database(stack)
    db.require_running()
    _feed(db, pg.pg_restore_read(), path, manifest)
    report.checks.append("full read")
    if restore_test:
        drop_database(db, _restore_into_scratch(db, path, manifest, "verify"))
        report.checks.append("restore test")
    counts = manifest.get("row_counts", {})
    report.tables, report.rows = len(counts), sum(counts.values())
    record = {"ok": True, "sha256": report.sha256, "checks": report.checks, "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_atomic(backups.verified_path(path), (json.dumps(record, indent=2) + "\n").encode(), backups.SIDECAR_MODE)
    return report


@dataclass
class RestoreReport:
    path: Path
    safety: BackupResult | None = None
    stopped: list[str] = field(default_factory=list)
    rows: int = 0


class AppServices(Protocol):
    """Stops the app services for a restore's swap and starts them again."""

    @property
    def where(self) -> str: ...  # "on h1, h2" for the messages

    def stop(self, services: list[str]) -> None: ...

    def start(self, services: list[str]) -> None: ...


@dataclass(frozen=True)
class ComposeApps:
    """The app services of Compose projects (the local engine, or the app hosts)."""

    hosts: Sequence[Stack]

    @property
    def where(self) -> str:
        return "on " + ", ".join(h.target.name for h in self.hosts)

    def stop(self, services: list[str]) -> None:
        for host in self.hosts:
            host.run(compose.stop(host.project, services), what="stopping the app services")

    def start(self, services: list[str]) -> None:
        for host in self.hosts:
            saved = host.saved_scale()
            argv = compose.up(host.project, services, scale={s: n for s, n in saved.items() if s in services},
                              no_recreate=True, no_deps=True, wait_timeout=host.settings.config.up_timeout)
            host.run(argv, what="starting the app services again", fix="see `inv health` and `inv logs SERVICE`")
            Executor()(admit(host, host.settings.config.up_timeout))  # back with new addresses: probed, then routed


def restore(
    stack: Stack,
    path: Path,
    confirm: Callable[[str], None],
    force: bool = False,
    say: Callable[[str], None] = print,
    apps: AppServices | None = None,
) -> RestoreReport:
    """Restore ``path`` into ``stack``'s database. With --force, connected app services
    are stopped during the swap by ``apps`` (default: on ``stack`` itself; on hosts, the
    app hosts; on a swarm, Swarm) and started again after."""
    paused = apps or ComposeApps([stack])
    manifest = check_integrity(path)
    db = Database(stack)
    db.require_running()
    _feed(db, pg.pg_restore_read(), path, manifest)
    sessions = db.other_sessions()
    if sessions and not force:
        who = ", ".join(sorted({f"{s.user}@{s.client} ({s.application or 'no name'})" for s in sessions}))
        fail(
            f"{len(sessions)} session(s) are connected to {db.name}: {who}",
            "stop them, or pass --force to stop the app services during the restore and start them again after",
        )
    confirm(db.name)
    report = RestoreReport(path)
    say(f"safety backup of {db.name} first ...")
    report.safety = backup(stack, label="pre-restore")
    say(f"safety backup: {report.safety.path}")
    services = sorted(stack.settings.config.stateless)
    if sessions:
        say(f"stopping {', '.join(services)} {paused.where} during the restore (they will be started again)")
        report.stopped = services  # before the stop: one that fails half-way is still undone
    try:
        if report.stopped:
            paused.stop(report.stopped)
        scratch = _restore_into_scratch(db, path, manifest, "restore")
        _swap(db, scratch, manifest.get("row_counts", {}))
        report.rows = sum(manifest.get("row_counts", {}).values())
    finally:
        if report.stopped:
            paused.start(report.stopped)
            say(f"started {', '.join(report.stopped)} again {paused.where}")
    return report


def _swap(db: Database, scratch: str, expected: dict[str, int]) -> None:
    """Put the scratch database in place of the current one. The replaced database is
    kept until the new one answers with the manifest's row counts; if it does not, the
    two are swapped back and the restore fails."""
    old = scratch_name(db.name, "replaced")
    current, previous, restored = pg.ident(db.name), pg.ident(old), pg.ident(scratch)
    db.query(f"ALTER DATABASE {current} WITH ALLOW_CONNECTIONS false", "postgres")
    try:
        db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE datname = {pg.literal(db.name)} AND pid <> pg_backend_pid()", "postgres")
        db.query(f"ALTER DATABASE {current} RENAME TO {previous}; ALTER DATABASE {restored} RENAME TO {current}", "postgres")
    except BaseException:
        db.query(f"ALTER DATABASE {current} WITH ALLOW_CONNECTIONS true", "postgres")
        drop_database(db, scratch)
        raise
    mismatches = count_mismatches(expected, db.row_counts())
    if mismatches:
        db.query(f"ALTER DATABASE {current} RENAME TO {restored}; ALTER DATABASE {previous} RENAME TO {current}", "postgres")
        db.query(f"ALTER DATABASE {current} WITH ALLOW_CONNECTIONS true", "postgres")
        drop_database(db, scratch)
        fail(f"after the swap the row counts differ ({'; '.join(mismatches)}); the previous database is back", "see `inv logs postgres`")
    drop_database(db, old)
