"""Backups that happen without anyone: a cron job on the stage's db host runs the script
of ``deploy.engine.commands.backup_job`` (every rule of ``inv db.backup``, then
retention), and the facts ``inv db.schedule``, ``inv health`` and ``inv check
--production`` read from that host (docs/backups.md, "Scheduled backups").

On the db host, beside the backups: ``schedule.json`` (the plan, for the freshness
rule), ``last-run.json`` (the job's outcome), ``schedule.log``. On the local engine the
backups go to the stage's local backups folder, where ``inv db.backup`` writes too.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from deploy.database import offsite
from deploy.database.dump import backups_dir
from deploy.database.files import NAME, TIMESTAMP
from deploy.database.session import Database
from deploy.engine.commands import backup_job, cron, files
from deploy.engine.ops import Ops, Put, run
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.retention import Listed, Policy, decide
from deploy.stack import schedule

PLAN_FILE = "schedule.json"
SCRIPT_FILE = "backup-schedule.sh"  # in the stage's state folder
DRILL_SCRIPT = "backup-drill.sh"
EVERY = re.compile(r"(\d+)([mhd])")
AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
UNIT = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Plan:
    every: int  # seconds between runs
    at: str | None  # HH:MM UTC, for a daily run
    retention: Policy  # after each run, on the host (and offsite, but for the newest kept there)
    installed_at: str  # ISO time, UTC
    offsite: bool = False  # each backup copied to the stage's restic repository

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Plan:
        """A plan read back from ``schedule.json`` (one written before the retention policy
        had buckets: its ``keep`` newest and ``keep_days`` days)."""
        if "retention" not in raw:
            old = {**raw}
            policy = Policy(old.pop("keep"), min_age=(old.pop("keep_days", None) or 0) * 86400)
            return cls(**old, retention=policy)
        return cls(**{**raw, "retention": Policy(**raw["retention"])})

    @property
    def every_text(self) -> str:
        for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.every % seconds == 0:
                return f"{self.every // seconds}{unit}"
        return f"{self.every}s"


def plan(every: str, at: str | None, retention: Policy, now: datetime, offsite: bool = False) -> Plan:
    """The flags of ``inv db.schedule``, checked (pure): what cron can run evenly."""
    m = EVERY.fullmatch(every or "")
    if not m:
        fail(f"--every {every!r} is not an interval", "give minutes, hours or a day: 15m, 6h, 1d")
    n, unit = int(m.group(1)), m.group(2)
    if not ((unit == "m" and n in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)) or (unit == "h" and n in (1, 2, 3, 4, 6, 8, 12))
            or (unit == "d" and n == 1)):
        fail(f"--every {every} does not divide the day evenly (cron runs at fixed minutes and hours)",
             "use 1-30m dividing 60 (15m, 30m), 1-12h dividing 24 (1h, 6h, 12h) or 1d")
    if at is not None:
        if not AT.fullmatch(at):
            fail(f"--at {at!r} is not a time", "give HH:MM in UTC, e.g. 03:30")
        if unit != "d":
            fail("--at is for a daily backup", "use --every 1d --at HH:MM, or leave --at out")
    return Plan(n * UNIT[unit], at, retention, now.astimezone(timezone.utc).isoformat(timespec="seconds"), offsite)


def cron_when(p: Plan, key: str) -> str:
    """cron's five fields for ``p``; the minute (and hour) of a stack's own, from ``key``."""
    if p.every < 3600:
        minutes = p.every // 60
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    minute = cron.spread(key, 60)
    if p.every < 86400:
        hours = p.every // 3600
        return f"{minute} * * * *" if hours == 1 else f"{minute} */{hours} * * *"
    if p.at:
        hour, at_minute = p.at.split(":")
        return f"{int(at_minute)} {int(hour)} * * *"
    return f"{minute} {cron.spread(key[::-1], 24)} * * *"


def host_dir(stack: Stack) -> str:
    """Where the scheduled backups are kept on the db host (locally: the stage's backups folder)."""
    return str(backups_dir(stack.settings)) if stack.target.local else stack.state_file("backups")


def _job(stack: Stack, p: Plan) -> backup_job.Job:
    cfg, db = stack.settings.config, Database(stack)
    return backup_job.Job(stack.settings.stage.project, stack.settings.stage.name, cfg.database.service, cfg.database.migrate_service,
                          db.user, db.name, host_dir(stack), p.retention,
                          offsite.copy_job(stack, p.retention) if p.offsite else None)


def cron_job(stack: Stack, p: Plan | None) -> schedule.Job:
    """The cron file of the stage's scheduled backup (``p`` None: its name and path only)."""
    name = cron.file_name("deploy", stack.settings.stage.project, stack.settings.stage.name, "db-backup")
    when = cron_when(p, name) if p else ""
    return schedule.Job(name, when, ("/bin/sh", stack.state_file(SCRIPT_FILE)), f"{host_dir(stack)}/{backup_job.LOG_FILE}",
                        f"inv db.schedule: backs up {stack.settings.stage.project}/{stack.settings.stage.name}")


def drill_job(stack: Stack) -> schedule.Job:
    """The weekly restore drill's cron file: Sundays, at an hour and minute of the stack's own."""
    name = cron.file_name("deploy", stack.settings.stage.project, stack.settings.stage.name, "db-drill")
    return schedule.Job(name, f"{cron.spread(name, 60)} {cron.spread(name[::-1], 24)} * * 0", ("/bin/sh", stack.state_file(DRILL_SCRIPT)),
                        f"{host_dir(stack)}/{backup_job.LOG_FILE}",
                        f"inv db.schedule: the weekly restore drill of {stack.settings.stage.project}/{stack.settings.stage.name}")


def install(stack: Stack, p: Plan) -> Ops[None]:
    """The job on the stack's target (the db host): its script, its plan, its cron file;
    and the weekly restore drill."""
    yield from schedule.require_cron(stack)
    if p.offsite:
        yield from offsite.configure(stack)
    yield run(stack, files.install_dir(host_dir(stack), 0o700), what="creating the backups folder")
    yield Put(stack, stack.state_file(SCRIPT_FILE), backup_job.script(_job(stack, p)).encode(), 0o700)
    yield Put(stack, stack.state_file(DRILL_SCRIPT), backup_job.drill_script(_job(stack, p)).encode(), 0o700)
    yield Put(stack, f"{host_dir(stack)}/{PLAN_FILE}", (json.dumps(asdict(p), indent=2) + "\n").encode(), 0o644)
    yield schedule.install(stack, cron_job(stack, p))
    yield schedule.install(stack, drill_job(stack))


def remove(stack: Stack) -> Ops[None]:
    """No more scheduled backups (the backups made stay)."""
    yield run(stack, files.remove_files(cron_job(stack, None).path, drill_job(stack).path, f"{host_dir(stack)}/{PLAN_FILE}"),
              what="removing the schedule")


@dataclass(frozen=True)
class Facts:
    """What the db host says of its scheduled backups."""

    plan: Plan | None
    cron_file: bool
    last_run: dict[str, Any] | None
    complete: tuple[tuple[str, datetime], ...]  # (file, created), newest first
    offsite_last: dict[str, Any] | None = None  # the last backup copied offsite, and when
    drill: dict[str, Any] | None = None  # the last restore drill's outcome
    cron_running: bool = True  # a cron daemon runs on the host


def complete_backups(listing: str) -> tuple[tuple[str, datetime], ...]:
    """Complete backups (dump, sidecar and manifest present) in an ``ls -1`` listing, newest first (pure)."""
    names = set(listing.split())
    found = [(n, datetime.strptime(m.group("ts"), TIMESTAMP).replace(tzinfo=timezone.utc))
             for n in names if (m := NAME.fullmatch(n)) and f"{n}.sha256" in names and f"{n}.json" in names]
    return tuple(sorted(found, key=lambda f: (f[1], f[0]), reverse=True))


def retained(f: Facts, now: datetime) -> list[tuple[Listed, tuple[str, ...]]]:
    """What the job's retention keeps of the host's complete scheduled backups, were it run
    ``now`` (with why), and what it deletes (no why)."""
    if f.plan is None:
        return []
    mine = [Listed(name, created) for name, created in f.complete if (m := NAME.match(name)) and m.group("label") == backup_job.LABEL]
    return decide(mine, f.plan.retention, now)


def facts(stack: Stack) -> Facts:
    directory = host_dir(stack)
    target = stack.target
    raw = target.read_text(f"{directory}/{PLAN_FILE}")
    last = target.read_text(f"{directory}/{backup_job.STATUS_FILE}")
    copied = target.read_text(f"{directory}/{backup_job.OFFSITE_FILE}")
    drill = target.read_text(f"{directory}/{backup_job.DRILL_FILE}")
    listing = target.run(files.list_dir(directory), warn=True)
    return Facts(Plan.load(json.loads(raw)) if raw else None, target.run(files.is_file(cron_job(stack, None).path), warn=True).ok,
                 _masked(stack, last), complete_backups(listing.stdout if listing.ok else ""), _masked(stack, copied), _masked(stack, drill),
                 target.run(cron.daemon_running(), warn=True).ok)


def _masked(stack: Stack, text: str | None) -> dict[str, Any] | None:
    """A JSON record of the host's, its texts (errors: what restic or psql said) with the stage's secrets masked."""
    if not text:
        return None
    return {k: stack.settings.masked(v) if isinstance(v, str) else v for k, v in json.loads(text).items()}


def freshness(f: Facts, now: datetime, where: str, stage: str) -> tuple[bool, str]:
    """(ok, detail): the newest complete backup is younger than twice the interval."""
    if f.plan is None:
        return True, f"no schedule on {where} (inv db.schedule --stage {stage} --every 6h)"
    p = f.plan
    limit = timedelta(seconds=2 * p.every)
    said = (f"every {p.every_text}" + (f" at {p.at} UTC" if p.at else "") + f", keeping {p.retention.summary}"
            + (", copied offsite" if p.offsite else ""))
    last = f.last_run or {}
    failed = f"; last run failed: {last.get('error')}" if last and not last.get("ok") else ""
    if not f.cron_file:
        return False, f"{said}: its cron file on {where} is gone, nothing runs (inv db.schedule --stage {stage} --every {p.every_text})"
    if not f.cron_running:
        return False, f"{said}: no cron daemon runs on {where}, nothing runs ({schedule.CRON_FIX} there)"
    if not f.complete:
        if now - datetime.fromisoformat(p.installed_at) < limit:
            return True, f"{said}: waiting for its first run{failed}"
        return False, f"{said}: no complete backup on {where}{failed}"
    name, created = f.complete[0]
    age = now - created
    detail = f"{said}: newest {name}, {_age(age)} old"
    if f.drill and not f.drill.get("ok"):
        return False, f"{detail}; the last restore drill failed ({f.drill.get('at')}): {f.drill.get('error')}"
    if age > limit:
        return False, f"{detail}, older than twice the interval ({_age(limit)}){failed or ': is cron running there?'}"
    if p.offsite:
        ok, offsite_detail = _offsite_freshness(f, now, limit, datetime.fromisoformat(p.installed_at))
        return ok, f"{detail}{failed}; {offsite_detail}"
    return True, detail + failed


def _offsite_freshness(f: Facts, now: datetime, limit: timedelta, installed: datetime) -> tuple[bool, str]:
    error = (f.last_run or {}).get("offsite_error") or ""
    if f.offsite_last is None:
        if now - installed < limit and not error:
            return True, "offsite: waiting for the first copy"
        return False, f"offsite: no copy yet{': ' + error if error else ''}"
    age = now - datetime.fromisoformat(f.offsite_last["at"])
    detail = f"offsite: newest {f.offsite_last.get('file')}, {_age(age)} old"
    if age > limit:
        return False, f"{detail}, older than twice the interval ({_age(limit)}){': ' + error if error else ''}"
    return (False, f"{detail}; the last run's {error}") if error else (True, detail)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
