"""``db.verify`` and ``db.restore``: prove a backup restorable; restore without ever
leaving less than there was.

A restore goes into a scratch database first; only when that restore succeeded and
its row counts match the manifest is it swapped in (two renames in one transaction).
Any failure before the swap leaves the current database untouched. The safety backup
is of the replaced database, renamed aside at the swap (``NAME_replaced_TIMESTAMP``)
where no app writes any more: it holds every write up to the swap; that database is
dropped only once its backup is complete.
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
from deploy.database import admin
from deploy.database import files as backups
from deploy.database.dump import BackupResult, backup, backups_dir
from deploy.database.session import Database
from deploy.engine.commands import compose
from deploy.engine.commands import postgres as pg
from deploy.engine.ops import Executor
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.stack.health import serving
from deploy.stack.rollout import admit

UNSAFE = re.compile(r"[^A-Za-z0-9._/@+-]")
MAX_IDENT = 63


def locate(stack: Stack, arg: str) -> Path:
    """The backup file meant by ``arg``: ``latest`` (the newest complete backup), a bare
    name (a file in the stage's backups directory, never one elsewhere), or a path with
    a '/' (``./NAME``, ``DIR/NAME``, ``/PATH``) that exists. ``..`` and shell characters
    are refused outright."""
    directory = backups_dir(stack.settings)
    if arg == "latest":
        complete = [b for b in backups.scan(directory) if b.complete]
        if not complete:
            fail(f"no complete backup in {directory}", "take one: inv db.backup")
        return complete[0].path
    if ".." in Path(arg).parts or UNSAFE.search(arg):
        fail(f"refusing the path {arg!r}: '..' and shell characters are not allowed", "give a plain name from `inv db.list` or a plain path")
    if "/" not in arg:
        if not (directory / arg).is_file():
            fail(f"backup {arg!r} not found in {directory}", f"see `inv db.list`; a file elsewhere is given as a path: ./{arg} or /path/to/{arg}")
        return directory / arg
    if not Path(arg).is_file():
        fail(f"{arg} is not a file", "give the path of a backup file, or a name from `inv db.list`")
    return Path(arg).resolve()


def origin(manifest: dict[str, Any]) -> str:
    """PROJECT/STAGE a backup's manifest names."""
    return f"{manifest.get('project') or '(no project)'}/{manifest.get('stage') or '(no stage)'}"


def check_origin(stack: Stack, path: Path, manifest: dict[str, Any], other_stage: bool) -> None:
    """A backup of another project or stage is refused unless ``other_stage`` (restoring
    production's data into staging is legitimate, but never by mistake)."""
    here = f"{stack.settings.stage.project}/{stack.settings.stage.name}"
    if origin(manifest) != here and not other_stage:
        fail(f"{path} is a backup of {origin(manifest)}, not of {here}",
             "restore it here anyway with --from-other-stage (e.g. production's data into staging), or pick a backup of this stage: inv db.list")


def describe(path: Path, manifest: dict[str, Any]) -> str:
    """What the confirmation shows of a backup: its full path, time, size, app version, origin."""
    size = manifest.get("size", path.stat().st_size)
    return (f"{path.resolve()} (made {manifest.get('created_at', 'at an unknown time')}, {size:,} bytes, "
            f"app version {manifest.get('app_version') or 'unknown'}, of {origin(manifest)})")


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
            Executor()(serving(host))


def restore(
    stack: Stack,
    path: Path,
    confirm: Callable[[str, str], None],
    force: bool = False,
    say: Callable[[str], None] = print,
    apps: AppServices | None = None,
    other_stage: bool = False,
) -> RestoreReport:
    """Restore ``path`` into ``stack``'s database. With --force, connected app services
    are stopped during the swap by ``apps`` (default: on ``stack`` itself; on hosts, the
    app hosts; on a swarm, Swarm) and started again after. ``confirm(name, action)``
    asks for the database's name; a backup of another project or stage needs
    ``other_stage``. A database a dead restore left refusing connections is re-opened
    first."""
    paused = apps or ComposeApps([stack])
    db = Database(stack)
    db.require_running()
    if admin.refuses_connections(db):
        say(f"{db.name} refuses connections (a restore that died while swapping left it so): allowing them again first")
        admin.reopen(db)
    manifest = check_integrity(path)
    check_origin(stack, path, manifest, other_stage)
    _feed(db, pg.pg_restore_read(), path, manifest)
    sessions = db.other_sessions()
    if sessions and not force:
        who = ", ".join(sorted({f"{s.user}@{s.client} ({s.application or 'no name'})" for s in sessions}))
        fail(
            f"{len(sessions)} session(s) are connected to {db.name}: {who}",
            "stop them, or pass --force to stop the app services during the restore and start them again after",
        )
    confirm(db.name, f"replace database {db.name} on {stack.target.name} with {describe(path, manifest)}")
    report = RestoreReport(path)
    services = sorted(stack.settings.config.stateless)
    if sessions:
        say(f"stopping {', '.join(services)} {paused.where} during the restore (they will be started again)")
        report.stopped = services  # before the stop: one that fails half-way is still undone
    try:
        if report.stopped:
            paused.stop(report.stopped)
        scratch = _restore_into_scratch(db, path, manifest, "restore")
        replaced = _swap(db, scratch, manifest.get("row_counts", {}))
        report.rows = sum(manifest.get("row_counts", {}).values())
    finally:
        if report.stopped:
            paused.start(report.stopped)
            say(f"started {', '.join(report.stopped)} again {paused.where}")
    report.safety = _back_up_replaced(db, replaced, say)
    return report


def _reason(err: BaseException) -> str:
    """The first line of what an error says (a failure's ``error:`` prefix dropped)."""
    return str(getattr(err, "message", err) or type(err).__name__).splitlines()[0].removeprefix("error: ")


def _back_up_replaced(db: Database, name: str, say: Callable[[str], None]) -> BackupResult:
    """The safety backup: of the replaced database, renamed aside at the swap, which no
    app writes to any more, so it holds every write the restore replaced. The database
    is dropped once its backup is complete, and kept if that fails."""
    stack = db.stack
    say(f"safety backup of the replaced database ({name}: the data as it was until the swap) ...")
    try:
        result = backup(stack.with_env(**{stack.settings.config.database.name_env: name}), label="pre-restore")
    except BaseException as err:  # noqa: BLE001 (Ctrl-C too: it fails saying where the data is)
        fail(f"the backup is restored, but the safety backup of the replaced database failed ({_reason(err)}); that database is kept, "
             f"as {name} on {stack.target.name}",
             f"make room in {backups_dir(stack.settings)} and dump it by hand (pg_dump -Fc -d {name} in the database's container); "
             f"then drop it: inv db.shell, DROP DATABASE \"{name}\";")
    drop_database(db, name)
    return result


def _swap(db: Database, scratch: str, expected: dict[str, int]) -> str:
    """Put the scratch database in place of the current one; returns the name the
    replaced database has now (connections allowed again, for its backup). If the new one
    does not answer with the manifest's row counts, the two are swapped back and the
    restore fails. Whatever stops it while the database refuses connections, they are
    allowed again, over a new connection (the one in use may be what failed)."""
    old = scratch_name(db.name, "replaced")
    current, previous, restored = pg.ident(db.name), pg.ident(old), pg.ident(scratch)
    try:
        db.query(f"ALTER DATABASE {current} WITH ALLOW_CONNECTIONS false", "postgres")
        db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 f"WHERE datname = {pg.literal(db.name)} AND pid <> pg_backend_pid()", "postgres")
        db.query(f"ALTER DATABASE {current} RENAME TO {previous}; ALTER DATABASE {restored} RENAME TO {current}", "postgres")
    except BaseException as err:
        _reopen_after(db, err)
        drop_database(db, scratch)
        raise
    mismatches = count_mismatches(expected, db.row_counts())
    if mismatches:
        db.query(f"ALTER DATABASE {current} RENAME TO {restored}; ALTER DATABASE {previous} RENAME TO {current}", "postgres")
        db.query(f"ALTER DATABASE {current} WITH ALLOW_CONNECTIONS true", "postgres")
        drop_database(db, scratch)
        fail(f"after the swap the row counts differ ({'; '.join(mismatches)}); the previous database is back", "see `inv logs postgres`")
    db.query(f"ALTER DATABASE {previous} WITH ALLOW_CONNECTIONS true", "postgres")
    return old


def _reopen_after(db: Database, err: BaseException) -> None:
    """Allow connections to the database again after ``err`` stopped the swap; if that
    fails too, say so and how to do it by hand."""
    try:
        admin.reopen(db)
    except BaseException as again:  # noqa: BLE001 (Ctrl-C too: it fails saying how to re-open it)
        fail(f"the restore stopped ({_reason(err)}) while {db.name} refused connections, and allowing them again failed ({_reason(again)}): "
             "no app can connect to it", f"as soon as {db.stack.target.name} answers, run {admin.reopen_by_hand(db)} "
             "(inv db.restore also does it first)")
