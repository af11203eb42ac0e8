"""The `db` namespace: backups, verification, restore, migrations and PostgreSQL tools."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Collection, Context, Exit

from tasks._input import confirm_typed, optional_number
from tasks._open import compose_only, open_fleet, open_settings
from tasks._where import Where, on_host, on_stage

if TYPE_CHECKING:
    from deploy.engine.ops import Ops
    from deploy.engine.stack import Stack
    from deploy.fleet import Fleet
    from deploy.retention import Dated, Policy


def _db(c: Context, where: Where) -> Stack:
    """The database's stack: the local engine, or the stage's db host."""
    return open_fleet(c, where).one("db").stack


def _changed_fleet(c: Context, where: Where) -> Fleet:
    """The fleet of a task that changes the stage's database (or its backups): refused
    where another stage's stack of its project runs (deploy.stack.owner)."""
    from deploy.stack.owner import refuse_other_stage

    fleet = open_fleet(c, where)
    refuse_other_stage(fleet)
    return fleet


def _on_app_host(c: Context, where: Where, command: Callable[[Stack], Ops[None]], purpose: str) -> None:
    """A one-off command of the app image (migrate, seed): locally, or on an app host; under the deploy lock."""
    from deploy.engine.ops import Executor
    from deploy.state import lock
    from deploy.swarm.switch import run_once

    fleet = _changed_fleet(c, where)
    with lock.held(fleet.primary.stack, purpose, wait=where.lock_wait):
        if fleet.swarm:  # a one-off task of the release now serving
            database = fleet.settings.config.database
            argv = {"db.migrate": database.migrate_command, "db.seed": database.seed_command}[purpose]
            Executor()(run_once(fleet, argv, purpose, "read the output above"))
            return
        Executor()(command(fleet.pick(fleet.settings.config.database.migrate_service).stack))


@on_host(help={"label": "a word added to the file name (letters, digits, . _ -)", "dir": "write here instead of the stage's backups directory"})
def backup(c: Context, label: str | None = None, dir: str | None = None, *, where: Where) -> None:  # noqa: A002
    """Back up the database: pg_dump (custom format) streamed to local storage, checksummed, with a manifest.

    The file is written as .partial, fsynced and renamed; the .sha256 sidecar and the
    JSON manifest (server version, row counts, app version) come last.
    """
    from deploy.database import dump as backupmod
    from deploy.output import ByteProgress, human_bytes, say

    # No lock: a backup changes nothing a deploy does, and one taken during a deploy (a
    # user's own cron) must not fail; the stage check still refuses another stage's stack.
    stack = _changed_fleet(c, where).one("db").stack
    progress = ByteProgress("backup")
    result = backupmod.backup(stack, label=label, directory=Path(dir) if dir else None, progress=progress)
    progress.finish()
    for path in result.swept:
        say(f"swept a stale partial file: {path}")
    rate = result.size / 1e6 / max(result.seconds, 1e-6)
    say(f"backup: {result.path}")
    say(f"  {human_bytes(result.size)} in {result.seconds:.1f} s ({rate:,.1f} MB/s), sha256 {result.sha256}")
    say(f"  {len(result.row_counts)} tables, {sum(result.row_counts.values()):,} rows")


@on_stage(name="list")
def list_(c: Context, *, where: Where) -> None:
    """List backups here, on the db host and offsite, with size, age, and whether each is complete and verified.

    Here: the stage's backups folder on this machine (db.backup, db.pull). On a stage
    with hosts, the db host's scheduled backups not copied home yet (db.pull); with an
    offsite repository, its snapshots.
    """
    from deploy.database import dump as backupmod
    from deploy.database import files as backups
    from deploy.database import offsite, scheduled
    from deploy.output import human_bytes, say, styled, table
    from deploy.stack.status import human_duration

    settings = open_settings(c, where)
    directory = backupmod.backups_dir(settings)
    found = backups.scan(directory)
    now = datetime.now(timezone.utc)
    rows = [(b.path.name, "here", human_bytes(b.size), human_duration(now - b.created), "yes" if b.complete else styled("NO", "red"),
             "yes" if b.verified else "no") for b in found]
    unreachable = []
    if settings.stage.hosts or settings.stage.offsite:
        here = {b.path.name for b in found}
        try:  # what is here is listed whatever happens there
            stack = open_fleet(c, where).one("db").stack
            if settings.stage.hosts:
                rows += [(name, stack.target.name, "", human_duration(now - created), "yes", "")
                         for name, created in scheduled.facts(stack).complete if name not in here]
            if settings.stage.offsite:
                rows += [(s.backup, f"offsite {s.short_id}", "", human_duration(now - s.time), "yes", "")
                         for s in reversed(offsite.snapshots(stack))]
        except Exit as err:
            unreachable.append(str(err.message).splitlines()[0].removeprefix("error: "))
    table(f"backups of {settings.stage.project}/{settings.stage.name} (here: {directory})",
          ["file", "where", "size", "age", "complete", "verified"], rows)
    for problem in unreachable:
        say(styled("warning:", "yellow") + f" not listed from the db host or offsite: {problem}")
    if not rows:
        say("no backups yet: inv db.backup (or inv db.schedule --every 6h)")


@on_host(
    positional=["file"],
    help={
        "file": "a backup name from `inv db.list`, a path, or `latest` (the newest complete backup)",
        "restore_test": "also restore into a scratch database and compare row counts with the manifest",
    },
)
def verify(c: Context, file: str, restore_test: bool = False, *, where: Where) -> None:
    """Prove a backup: checksum, a full read of the archive, and with --restore-test a real restore.

    `inv db.verify latest --restore-test` proves the newest complete backup.
    """
    from deploy.database import restore as restoremod
    from deploy.output import say

    stack = _db(c, where)
    path = restoremod.locate(stack, file)
    report = restoremod.verify(stack, path, restore_test=restore_test)
    say(f"verified {path.name}: {', '.join(report.checks)} ok ({report.tables} tables, {report.rows:,} rows in the manifest)")


@on_host(
    locks=True,
    positional=["file"],
    help={
        "file": "`latest`, a backup name from `inv db.list` (the stage's backups only), or a path: ./FILE, /PATH "
                "(with --from-offsite: a snapshot id)",
        "from_offsite": "FILE is a snapshot of the offsite repository (`inv db.offsite.list`): fetched home first",
        "from_other_stage": "restore a backup whose manifest names another stage or project (e.g. production's data into staging)",
        "yes": "do not ask for the database name (for CI)",
        "force": "stop the app services while restoring if they are connected, and start them again after",
    },
)
def restore(c: Context, file: str, from_offsite: bool = False, from_other_stage: bool = False, yes: bool = False, force: bool = False,
            *, where: Where) -> None:
    """Restore a backup, safely: checksum and full read first, a restore into a scratch database, a swap, a safety backup of what it replaced.

    A failure at any point before the swap leaves the current database as it was. The
    safety backup is of the database replaced, after the swap (no app writes to it any
    more: it holds every write up to the swap); it is dropped once backed up. A backup
    of another stage or project is refused without --from-other-stage. --from-offsite
    SNAPSHOT: the backup in that restic snapshot, fetched home and checked like any
    other first.
    """
    from deploy.database import dump as backupmod
    from deploy.database import offsite
    from deploy.database import restore as restoremod
    from deploy.output import say
    from deploy.state import lock
    from deploy.swarm.scale import SwarmApps

    fleet = _changed_fleet(c, where)
    stack = fleet.one("db").stack
    if from_offsite:
        path = offsite.fetch_home(stack, file, backupmod.backups_dir(stack.settings))
        say(f"fetched {path.name} from the offsite snapshot {file}")
    else:
        path = restoremod.locate(stack, file)

    def confirm(dbname: str, action: str) -> None:
        confirm_typed(dbname, action, yes)

    with lock.held(fleet.primary.stack, "db.restore", wait=where.lock_wait, file=str(path), force=force):
        apps = SwarmApps(fleet, fleet.settings.config.up_timeout) if fleet.swarm else restoremod.ComposeApps(fleet.app_stacks() or [stack])
        report = restoremod.restore(stack, path, confirm, force=force, say=say, apps=apps, other_stage=from_other_stage)
    say(f"restored {path.name}: {report.rows:,} rows, row counts match the manifest")
    say(f"safety backup of the database it replaced (every write up to the swap): {report.safety.path if report.safety else 'none'}")


RETENTION_HELP = {
    "keep": "the newest complete backups kept (default deploy.retention.backups); the newest always",
    "keep_daily": "also the newest backup of each of the last N days that have one (default deploy.retention.keep_daily)",
    "keep_weekly": "of each of the last N weeks (default deploy.retention.keep_weekly)",
    "keep_monthly": "of each of the last N months (default deploy.retention.keep_monthly)",
    "min_age": "nothing younger is deleted: 0, 90m, 36h, 7d (default deploy.retention.min_age)",
}


def _policy(default: Policy, keep: str | None, keep_daily: str | None, keep_weekly: str | None, keep_monthly: str | None,
            min_age: str | None) -> Policy:
    """The retention flags over the stage's deploy.retention."""
    from deploy import retention

    return retention.policy(optional_number("--keep", keep, default.last, minimum=1),
                            optional_number("--keep-daily", keep_daily, default.daily),
                            optional_number("--keep-weekly", keep_weekly, default.weekly),
                            optional_number("--keep-monthly", keep_monthly, default.monthly),
                            default.min_age if min_age is None else retention.parse_duration(min_age, "--min-age"))


def _say_kept(verdicts: Sequence[tuple[Dated, tuple[str, ...]]], p: Policy, indent: str = "  ") -> None:
    """The policy as the dates it keeps."""
    from deploy import retention
    from deploy.output import say

    complete = [b for b, _ in verdicts if b.complete]
    say(f"{indent}retention: {p.summary}; keeps {sum(1 for b, why in verdicts if why and b.complete)} of {len(complete)} complete:")
    for line in retention.kept_dates(verdicts):
        say(f"{indent}  {line}")


@on_stage(held="db.prune", help={**RETENTION_HELP, "dry_run": "show what would be kept and deleted, delete nothing"})
def prune(c: Context, keep: str | None = None, keep_daily: str | None = None, keep_weekly: str | None = None, keep_monthly: str | None = None,
          min_age: str | None = None, dry_run: bool = False, *, where: Where) -> None:
    """Delete old backups (on this machine) by the stage's retention: the newest N, one a day, a week, a month, nothing under the minimum age.

    Counts only complete backups and never deletes the newest complete one. Shows the
    dates it keeps and why; the scheduled job on the db host applies the same rule.
    """
    from deploy import retention
    from deploy.database import dump as backupmod
    from deploy.database import files as backups
    from deploy.output import human_bytes, say

    settings = open_settings(c, where)
    p = _policy(settings.config.retention.backups, keep, keep_daily, keep_weekly, keep_monthly, min_age)
    verdicts = retention.decide(backups.scan(backupmod.backups_dir(settings)), p, datetime.now(timezone.utc))
    _say_kept(verdicts, p, indent="")
    doomed = [b for b, why in verdicts if not why]
    for b in doomed:
        say(f"{'would delete' if dry_run else 'deleting'} {b.path.name} ({human_bytes(b.size)}{'' if b.complete else ', incomplete'})")
        if not dry_run:
            backups.delete(b)
    say(f"{len(doomed)} backup(s) {'would be ' if dry_run else ''}deleted")


@on_host(locks=True)
def migrate(c: Context, *, where: Where) -> None:
    """Run the migrations (deploy.database.migrate_command) in a one-off container of the app image."""
    from deploy.database import admin as dbadmin

    _on_app_host(c, where, dbadmin.migrate, "db.migrate")


@on_host(locks=True)
def seed(c: Context, *, where: Where) -> None:
    """Run the seed command (deploy.database.seed_command) in a one-off container of the app image."""
    from deploy.database import admin as dbadmin

    _on_app_host(c, where, dbadmin.seed, "db.seed")


@on_host()
def shell(c: Context, *, where: Where) -> None:
    """Open psql on the database."""
    from deploy.database.session import Database
    from deploy.engine.commands import postgres as pg

    stack = _db(c, where)
    db = Database(stack)
    argv = db.in_container(pg.psql_interactive(db.user, db.name), tty=True)
    result = stack.target.run(argv, env=stack.command_env, hide=False, pty=True, warn=True)
    if not result.ok:
        raise Exit(code=result.exited)


@on_host(help={"limit": "how many of the slowest queries to show (default 10)"})
def stats(c: Context, limit: str | None = None, *, where: Where) -> None:
    """Connections used of max_connections, database size, cache hit ratio, the slowest queries."""
    from deploy.database import admin as dbadmin
    from deploy.output import say, table

    rows = optional_number("--limit", limit, default=10, minimum=1)
    s = dbadmin.stats(_db(c, where), limit=rows)
    table("database", ["connections", "size", "cache hit ratio"], [(s.connections, s.size, s.cache_hit)])
    if s.statements_missing:
        say("pg_stat_statements is not installed in this database: CREATE EXTENSION pg_stat_statements; (inv db.shell)")
    else:
        table("slowest queries (pg_stat_statements)", ["mean ms", "calls", "total ms", "query"], s.slowest)


@on_host(locks=True, positional=["pid"], help={"pid": "the backend's process id (pg_stat_activity.pid)", "yes": "do not ask"})
def kill(c: Context, pid: str, yes: bool = False, *, where: Where) -> None:
    """Terminate one PostgreSQL session (asks first)."""
    from deploy.database import admin as dbadmin
    from deploy.database.session import Database
    from deploy.errors import fail
    from deploy.output import say
    from deploy.state import lock

    number = dbadmin.parse_pid(pid)
    fleet = _changed_fleet(c, where)
    stack = fleet.one("db").stack
    with lock.held(fleet.primary.stack, f"db.kill {number}", wait=where.lock_wait):
        Database(stack).require_running()
        summary = dbadmin.session_summary(stack, number)
        confirm_typed(str(number), f"terminate session {number} ({summary})", yes)
        if not dbadmin.kill(stack, number):
            fail(f"session {number} was not terminated (it may have ended)", "check pg_stat_activity")
    say(f"terminated session {number}")


@on_host(locks=True, help={"yes": "do not ask"})
def reindex(c: Context, yes: bool = False, *, where: Where) -> None:
    """Rebuild every index of the database concurrently (asks first)."""
    from deploy.database import admin as dbadmin
    from deploy.database.session import Database
    from deploy.output import say
    from deploy.state import lock

    fleet = _changed_fleet(c, where)
    stack = fleet.one("db").stack
    db = Database(stack)
    with lock.held(fleet.primary.stack, "db.reindex", wait=where.lock_wait):
        confirm_typed(db.name, f"reindex every index of {db.name}", yes)
        dbadmin.reindex(stack)
    say(f"reindexed {db.name}")


@on_host(
    name="schedule",
    locks=True,  # not with no options (it shows the schedule) nor with --dry-run
    help={
        "every": "how often: 15m, 30m, 1h, 6h, 12h, 1d (intervals that divide the day)",
        "at": "with --every 1d: the time of day, HH:MM UTC",
        **RETENTION_HELP,
        "off": "remove the schedule (the backups stay)",
        "dry_run": "print what would be installed and change nothing",
    },
)
def schedule_(c: Context, every: str | None = None, at: str | None = None, keep: str | None = None, keep_daily: str | None = None,
              keep_weekly: str | None = None, keep_monthly: str | None = None, min_age: str | None = None, off: bool = False,
              dry_run: bool = False, *, where: Where) -> None:
    """Schedule backups on the db host (cron; every rule of db.backup; retention); no options: show the schedule.

    The job needs only what the deploy put on the host (Docker, the database's
    container) and the base system; one run at a time; a run killed at any moment
    leaves no complete-looking file. Its outcome shows here and in inv health, which
    fails when the newest complete backup is older than twice the interval.
    """
    from deploy.database import scheduled
    from deploy.engine.commands import backup_job
    from deploy.engine.ops import Executor
    from deploy.errors import fail
    from deploy.output import say, styled
    from deploy.state import lock

    given = [v for v in (keep, keep_daily, keep_weekly, keep_monthly, min_age) if v is not None]
    if off and (every or at or given):
        fail("--off removes the schedule: it takes no other option", "run inv db.schedule --off alone")
    if not every and (at or given):
        fail("--at, --keep, --keep-daily, --keep-weekly, --keep-monthly and --min-age belong to a schedule",
             "give --every too, e.g. --every 6h --keep 14")
    changes = bool(every or off)
    fleet = compose_only(_changed_fleet(c, where) if changes else open_fleet(c, where), "db.schedule",
                         "run inv db.backup --stage STAGE from a scheduler of your own (cron on this machine)")
    stack = fleet.one("db").stack
    where_name = stack.target.name
    if changes:
        p = _policy(fleet.settings.config.retention.backups, keep, keep_daily, keep_weekly, keep_monthly, min_age)
        plan = None if off else scheduled.plan(every or "", at, p, datetime.now(timezone.utc), offsite=fleet.settings.stage.offsite is not None)
        given_flags = {"every": every, "at": at, "keep": keep, "keep_daily": keep_daily, "keep_weekly": keep_weekly,
                       "keep_monthly": keep_monthly, "min_age": min_age, "off": off}
        flags: dict[str, Any] = {k: v for k, v in given_flags.items() if v}
        with nullcontext() if dry_run else lock.held(fleet.primary.stack, "db.schedule", wait=where.lock_wait, **flags):
            Executor(dry_run=dry_run)(scheduled.remove(stack) if plan is None else scheduled.install(stack, plan))
        if dry_run:
            return
        if plan is None:
            say(f"no more scheduled backups on {where_name} (the backups made stay; inv db.pull copies them home)")
            return
        say(styled("scheduled", "green") + f" on {where_name}: {scheduled.cron_when(plan, scheduled.cron_job(stack, plan).name)} "
            f"(cron, UTC), keeping {plan.retention.summary}")
    facts = scheduled.facts(stack)
    ok, detail = scheduled.freshness(facts, datetime.now(timezone.utc), where_name, fleet.settings.stage.name)
    say(f"backups on {where_name} in {scheduled.host_dir(stack)}: " + (styled("ok", "green") if ok else styled("FAILING", "red")))
    say(f"  {detail}")
    last = facts.last_run
    if last:
        outcome = styled("ok", "green") + f" {last.get('file')}" if last.get("ok") else styled("failed", "red") + f": {last.get('error')}"
        say(f"  last run: {last.get('started_at')}, {last.get('seconds')} s, {outcome}")
    drill = facts.drill
    if drill:
        outcome = styled("ok", "green") if drill.get("ok") else styled("FAILED", "red") + f": {drill.get('error')}"
        say(f"  last restore drill: {drill.get('at')}, {drill.get('file')}, {outcome}")
    elif facts.plan:
        say(f"  restore drill: weekly ({scheduled.drill_job(stack).when}, cron, UTC), none yet")
    say(f"  {len(facts.complete)} complete backup(s) there; log: {scheduled.host_dir(stack)}/{backup_job.LOG_FILE}")
    if facts.plan:
        _say_kept(scheduled.retained(facts, datetime.now(timezone.utc)), facts.plan.retention)


@on_host(name="pull")
def pull_(c: Context, *, where: Where) -> None:
    """Copy the db host's new complete backups home, sha256 checked on arrival.

    They land in the stage's local backups folder, where db.list, db.verify and
    db.restore find them.
    """
    from deploy.database import dump as backupmod
    from deploy.database import pull as pullmod
    from deploy.database import scheduled
    from deploy.output import ByteProgress, say

    stack = _db(c, where)
    local_dir = backupmod.backups_dir(stack.settings)
    if stack.target.local:
        say(f"nothing to pull: on the local engine the scheduled backups are written to {local_dir}")
        return
    names = pullmod.missing(scheduled.facts(stack).complete, local_dir)
    for name in names:
        progress = ByteProgress(name)
        path = pullmod.pull(stack, f"{scheduled.host_dir(stack)}/{name}", local_dir, progress)
        progress.finish()
        say(f"pulled {path}")
    say(f"{len(names)} backup(s) pulled from {stack.target.name}" if names else f"every complete backup of {stack.target.name} is here already")


@on_host(name="init", locks=True)
def offsite_init(c: Context, *, where: Where) -> None:
    """Create the stage's offsite restic repository (or keep the existing one) from the db host, and store its settings there."""
    from deploy.database import offsite
    from deploy.engine.ops import Executor
    from deploy.output import say
    from deploy.state import lock

    fleet = _changed_fleet(c, where)
    stack = fleet.one("db").stack
    with lock.held(fleet.primary.stack, "db.offsite.init", wait=where.lock_wait):
        created = Executor()(offsite.init(stack))
    say(("created" if created else "kept the existing") + f" offsite repository for {offsite.tag(stack)} (reached from {stack.target.name}); "
        "each scheduled backup is copied there (inv db.schedule --every ...)")


@on_host(name="list")
def offsite_list(c: Context, *, where: Where) -> None:
    """List the stage's backups in the offsite repository (one restic snapshot each)."""
    from deploy.database import offsite
    from deploy.output import say, table
    from deploy.stack.status import human_duration

    stack = _db(c, where)
    found = offsite.snapshots(stack)
    now = datetime.now(timezone.utc)
    table(f"offsite snapshots of {offsite.tag(stack)}", ["snapshot", "backup", "age"],
          ((s.short_id, s.backup, human_duration(now - s.time)) for s in reversed(found)))
    if not found:
        say("no offsite copy yet: they are made after each scheduled backup (inv db.schedule --every ...)")


@on_stage(name="prune", held="db.offsite.prune", help={"dry_run": "show what would be kept and forgotten, forget nothing"})
def offsite_prune_(c: Context, dry_run: bool = False, *, where: Where) -> None:
    """Apply the retention to the offsite repository from this machine, with its own credentials (offsite.admin_env_file).

    For a repository the db host may only append to (offsite.append_only): restic
    forget --prune of the stage's snapshots by deploy.retention, the newest
    offsite.keep; shows the dates it keeps and why, and what it forgets.
    """
    from deploy.database import offsite, offsite_prune
    from deploy.engine.local import LocalTarget
    from deploy.engine.stack import Stack
    from deploy.output import say

    stack = Stack(open_settings(c, where), LocalTarget(c))
    p = offsite.policy(offsite.config(stack), stack.settings.config.retention.backups)
    verdicts = offsite_prune.prune(stack, p, dry_run)
    _say_kept(verdicts, p, indent="")
    gone = [b for b, why in verdicts if not why]
    for b in gone:
        say(f"{'would forget' if dry_run else 'forgot'} {b.name} ({b.created:%Y-%m-%d %H:%M} UTC)")
    say(f"{len(gone)} snapshot(s) of {offsite.tag(stack)} " + ("would be forgotten" if dry_run else "forgotten, their data pruned"))


ns = Collection("db", backup, list_, verify, restore, prune, migrate, seed, shell, stats, kill, reindex, schedule_, pull_,
                Collection("offsite", offsite_init, offsite_list, offsite_prune_))
