"""The `db` namespace: backups, verification, restore, migrations and PostgreSQL tools."""
from datetime import datetime, timezone
from pathlib import Path

from invoke import Collection, Context, Exit, task

from deploy import backups, dbadmin
from deploy import backup as backupmod
from deploy import restore as restoremod
from deploy.commands import postgres as pg
from deploy.database import Database
from deploy.output import ByteProgress, human_bytes, say, table
from deploy.status import human_duration
from tasks._common import confirm_typed, helps, open_stack, whole_number


@task(help=helps(label="a word added to the file name (letters, digits, . _ -)", dir="write here instead of the stage's backups directory"))
def backup(c: Context, label: str | None = None, dir: str | None = None, stage: str | None = None, env_file: str | None = None) -> None:  # noqa: A002
    """Back up the database: pg_dump (custom format) streamed to local storage, checksummed, with a manifest.

    The file is written as .partial, fsynced and renamed; the .sha256 sidecar and the
    JSON manifest (server version, row counts, app version) come last.
    """
    stack = open_stack(c, stage, env_file)
    progress = ByteProgress("backup")
    result = backupmod.backup(stack, label=label, directory=Path(dir) if dir else None, progress=progress)
    progress.finish()
    for path in result.swept:
        say(f"swept a stale partial file: {path}")
    rate = result.size / 1e6 / max(result.seconds, 1e-6)
    say(f"backup: {result.path}")
    say(f"  {human_bytes(result.size)} in {result.seconds:.1f} s ({rate:,.1f} MB/s), sha256 {result.sha256}")
    say(f"  {len(result.row_counts)} tables, {sum(result.row_counts.values()):,} rows")


@task(name="list", help=helps())
def list_(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """List backups with size, age, and whether each is complete and verified."""
    stack = open_stack(c, stage, env_file)
    directory = backupmod.backups_dir(stack.settings)
    found = backups.scan(directory)
    now = datetime.now(timezone.utc)
    table(
        f"backups in {directory}",
        ["file", "size", "age", "complete", "verified"],
        ((b.path.name, human_bytes(b.size), human_duration(now - b.created), "yes" if b.complete else "[red]NO[/red]", "yes" if b.verified else "no") for b in found),
    )
    if not found:
        say("no backups yet: inv db.backup")


@task(
    positional=["file"],
    help=helps(
        file="a backup name from `inv db.list`, a path, or `latest` (the newest complete backup)",
        restore_test="also restore into a scratch database and compare row counts with the manifest",
    ),
)
def verify(c: Context, file: str, restore_test: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Prove a backup: checksum, a full read of the archive, and with --restore-test a real restore.

    `inv db.verify latest --restore-test` proves the newest complete backup.
    """
    stack = open_stack(c, stage, env_file)
    path = restoremod.locate(stack, file)
    report = restoremod.verify(stack, path, restore_test=restore_test)
    say(f"verified {path.name}: {', '.join(report.checks)} ok ({report.tables} tables, {report.rows:,} rows in the manifest)")


@task(
    positional=["file"],
    help=helps(
        file="a backup name from `inv db.list`, a path that exists, or `latest`",
        yes="do not ask for the database name (for CI)",
        force="stop the app services while restoring if they are connected, and start them again after",
    ),
)
def restore(c: Context, file: str, yes: bool = False, force: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Restore a backup, safely: checksum and full read first, a safety backup, a restore into a scratch database, then a swap.

    A failure at any point before the swap leaves the current database as it was.
    """
    stack = open_stack(c, stage, env_file)
    path = restoremod.locate(stack, file)

    def confirm(dbname: str) -> None:
        confirm_typed(dbname, f"replace database {dbname} on {stack.target.name} with {path.name}", yes)

    report = restoremod.restore(stack, path, confirm, force=force, say=say)
    say(f"restored {path.name}: {report.rows:,} rows, row counts match the manifest")
    say(f"the previous data is in {report.safety.path}" if report.safety else "")


@task(
    help=helps(
        keep="complete backups to keep (default: deploy.retention.backups)",
        keep_days="also keep every backup younger than this many days",
        dry_run="show what would be deleted, delete nothing",
    )
)
def prune(c: Context, keep: str | None = None, keep_days: str | None = None, dry_run: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Delete old backups. Counts only complete ones and never deletes the newest complete backup."""
    stack = open_stack(c, stage, env_file)
    keep = stack.settings.config.retention.backups if keep is None else whole_number("--keep", keep, minimum=1)
    days = None if keep_days is None else whole_number("--keep-days", keep_days)
    directory = backupmod.backups_dir(stack.settings)
    doomed = backups.prune_plan(backups.scan(directory), keep, days, datetime.now(timezone.utc))
    for b in doomed:
        say(f"{'would delete' if dry_run else 'deleting'} {b.path.name} ({human_bytes(b.size)}{'' if b.complete else ', incomplete'})")
        if not dry_run:
            backups.delete(b)
    say(f"{len(doomed)} backup(s) {'would be ' if dry_run else ''}deleted; kept the newest {keep} complete")


@task(help=helps())
def migrate(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Run the migrations (deploy.database.migrate_command) in a one-off container of the app image."""
    dbadmin.migrate(open_stack(c, stage, env_file))


@task(help=helps())
def seed(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Run the seed command (deploy.database.seed_command) in a one-off container of the app image."""
    dbadmin.seed(open_stack(c, stage, env_file))


@task(help=helps())
def shell(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Open psql on the database."""
    stack = open_stack(c, stage, env_file)
    db = Database(stack)
    argv = db.in_container(pg.psql_interactive(db.user, db.name), tty=True)
    result = stack.target.run(argv, env=stack.settings.env, hide=False, pty=True, warn=True)
    if not result.ok:
        raise Exit(code=result.exited)


@task(help=helps(limit="how many of the slowest queries to show"))
def stats(c: Context, limit: int = 10, stage: str | None = None, env_file: str | None = None) -> None:
    """Connections used of max_connections, database size, cache hit ratio, the slowest queries."""
    s = dbadmin.stats(open_stack(c, stage, env_file), limit=limit)
    table("database", ["connections", "size", "cache hit ratio"], [(s.connections, s.size, s.cache_hit)])
    if s.statements_missing:
        say("pg_stat_statements is not installed in this database: CREATE EXTENSION pg_stat_statements; (inv db.shell)")
    else:
        table("slowest queries (pg_stat_statements)", ["mean ms", "calls", "total ms", "query"], s.slowest)


@task(positional=["pid"], help=helps(pid="the backend's process id (pg_stat_activity.pid)", yes="do not ask"))
def kill(c: Context, pid: str, yes: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Terminate one PostgreSQL session (asks first)."""
    number = dbadmin.parse_pid(pid)
    stack = open_stack(c, stage, env_file)
    Database(stack).require_running()
    summary = dbadmin.session_summary(stack, number)
    confirm_typed(str(number), f"terminate session {number} ({summary})", yes)
    if not dbadmin.kill(stack, number):
        raise Exit(f"error: session {number} was not terminated (it may have ended)\n  fix: check pg_stat_activity", code=1)
    say(f"terminated session {number}")


@task(help=helps(yes="do not ask"))
def reindex(c: Context, yes: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Rebuild every index of the database concurrently (asks first)."""
    stack = open_stack(c, stage, env_file)
    db = Database(stack)
    confirm_typed(db.name, f"reindex every index of {db.name}", yes)
    dbadmin.reindex(stack)
    say(f"reindexed {db.name}")


ns = Collection("db", backup, list_, verify, restore, prune, migrate, seed, shell, stats, kill, reindex)
