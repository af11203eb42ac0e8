"""Offsite copies of the scheduled backups: a restic repository (encrypted, deduplicated)
that the db host copies each new backup into (docs/backups.md, "Offsite copies").

The repository is the stage's ``offsite`` setting; its password is a secret variable of
the stage (``offsite.password_env``). On the db host both live in ``STATE/offsite/``
(0700): ``password`` (0600) and ``restic.env`` (0600: the repository, the password
file's path, ``offsite.env_vars``), which restic's command lines source; none of it is
ever an argument, so no process list shows it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from deploy.config.schema import Offsite
from deploy.database.files import scan
from deploy.database.pull import pull
from deploy.engine.commands import backup_job, files, restic
from deploy.engine.ops import Executor, Ops, Put, run
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.retention import Policy

OFFSITE_DIR = "offsite"
ENV_FILE = f"{OFFSITE_DIR}/restic.env"
PASSWORD_FILE = f"{OFFSITE_DIR}/password"
SNAPSHOT = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime
    paths: tuple[str, ...]

    @property
    def backup(self) -> str:
        """The backup it holds (its .dump file's name)."""
        return next((Path(p).name for p in self.paths if p.endswith(".dump")), "")


def tag(stack: Stack) -> str:
    return f"{stack.settings.stage.project}-{stack.settings.stage.name}"


def config(stack: Stack) -> Offsite:
    """The stage's offsite repository, or a clear error."""
    offsite = stack.settings.stage.offsite
    if offsite is None:
        stage = stack.settings.stage.name
        fail(f"the stage {stage} has no offsite repository",
             f"set deploy.stages.{stage}.offsite.repository in invoke.yaml (docs/backups.md, \"Offsite copies\")")
    return offsite


def policy(offsite: Offsite, retention: Policy) -> Policy:
    """The repository's retention: ``retention``, but for the count of the newest kept (``offsite.keep``)."""
    return replace(retention, last=offsite.keep)


def copy_job(stack: Stack, retention: Policy) -> backup_job.OffsiteCopy | None:
    """What the scheduled job needs to copy offsite (None when the stage has no repository):
    ``retention`` applied there too (``policy``), unless the repository is append-only for
    the db host (``inv db.offsite.prune`` applies it from elsewhere)."""
    offsite = stack.settings.stage.offsite
    if offsite is None:
        return None
    return backup_job.OffsiteCopy(stack.state_file(ENV_FILE), offsite.sftp_command, tag(stack),
                                  None if offsite.append_only else policy(offsite, retention))


def configure(stack: Stack) -> Ops[None]:
    """The repository's settings and password on the db host, 0600 from their first byte."""
    offsite = config(stack)
    s = stack.settings
    password = s.env.get(offsite.password_env, "")
    if len(password) < 16:
        fail(f"{offsite.password_env} is {'not set' if not password else 'shorter than 16 characters'}: the offsite repository's password",
             f"set a long random {offsite.password_env} in {s.env_file} (openssl rand -hex 32); keep a copy elsewhere: "
             "without it the offsite backups cannot be read")
    missing = [v for v in offsite.env_vars if not s.env.get(v)]
    if missing:
        fail(f"offsite.env_vars {', '.join(missing)} not set", f"set them in {s.env_file}")
    values = {"RESTIC_REPOSITORY": offsite.repository, "RESTIC_PASSWORD_FILE": stack.state_file(PASSWORD_FILE),
              **{v: s.env[v] for v in offsite.env_vars}}
    yield run(stack, files.install_dir(stack.state_file(OFFSITE_DIR), 0o700), what="creating the offsite folder")
    yield Put(stack, stack.state_file(PASSWORD_FILE), password.encode(), 0o600)
    yield Put(stack, stack.state_file(ENV_FILE), restic.env_file(values).encode(), 0o600)


def _restic(stack: Stack, argv: list[str]) -> list[str]:
    return restic.with_env(stack.state_file(ENV_FILE), argv)


def init(stack: Stack) -> Ops[bool]:
    """A new repository (True), or the existing one kept (False)."""
    offsite = config(stack)
    yield from configure(stack)
    result = yield run(stack, _restic(stack, restic.init(offsite.sftp_command)), what="creating the offsite repository", check=False)
    if result.ok:
        return True
    if "already" in (result.stderr + result.stdout):
        return False
    fail(f"restic init failed on {stack.target.name}: {stack.settings.masked(last_lines(result.stderr, 3))}",
         f"check offsite.repository and that {stack.target.name} reaches it (restic installed: apt-get install restic)")


def snapshots(stack: Stack) -> list[Snapshot]:
    """The stage's snapshots in the repository, oldest first."""
    offsite = config(stack)
    result = stack.target.run(_restic(stack, restic.snapshots(offsite.sftp_command, tag(stack))), warn=True)
    if not result.ok:
        fail(f"listing the offsite snapshots failed on {stack.target.name}: {stack.settings.masked(last_lines(result.stderr, 3))}",
             "run inv db.offsite.init once (it also rewrites the repository's settings on the host)")
    return parse_snapshots(result.stdout)


def parse_snapshots(text: str) -> list[Snapshot]:
    """``restic snapshots --json`` (pure)."""
    return sorted(map(snapshot, json.loads(text or "[]") or []), key=lambda s: s.time)


def snapshot(raw: dict[str, Any]) -> Snapshot:
    """One snapshot of restic's JSON (pure)."""
    return Snapshot(raw["id"], raw.get("short_id", raw["id"][:8]), datetime.fromisoformat(_seconds(raw["time"])), tuple(raw.get("paths") or ()))


def _seconds(stamp: str) -> str:
    """restic's RFC 3339 time with nanoseconds as Python reads it (microseconds at most)."""
    m = re.fullmatch(r"(.+T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    if not m:
        fail(f"restic printed a time this tool cannot read: {stamp!r}", "report it, with `restic version`")
    frac = (m.group(2) or ".")[1:7].ljust(6, "0")
    return f"{m.group(1)}.{frac}{'+00:00' if m.group(3) == 'Z' else m.group(3)}"


def fetch_home(stack: Stack, snapshot: str, local_dir: Path) -> Path:
    """The backup in ``snapshot``, restored on the db host into a private folder and
    copied home like ``db.pull`` does (sha256 checked against its own sidecar)."""
    offsite = config(stack)
    if not SNAPSHOT.fullmatch(snapshot):
        fail(f"{snapshot!r} is not a snapshot id", "give an id from inv db.offsite.list")
    known = [s for s in snapshots(stack) if s.id.startswith(snapshot)]
    if len(known) != 1:
        fail(f"{'no' if not known else 'more than one'} snapshot of {tag(stack)} matches {snapshot}", "give an id from inv db.offsite.list")
    chosen = known[0]
    if not chosen.backup or not SNAPSHOT.fullmatch(chosen.short_id):
        fail(f"snapshot {chosen.short_id} holds no backup", "give another id from inv db.offsite.list")
    existing = local_dir / chosen.backup
    if existing.is_file():
        if any(b.complete for b in scan(local_dir) if b.path == existing):
            return existing  # the same backup is here already, complete
        fail(f"{existing} is here but not complete", f"remove {existing} (and its .sha256 and .json), then fetch it again")
    folder = stack.state_file(f"{OFFSITE_DIR}/restore-{chosen.short_id}")
    executor = Executor(say=lambda _: None)

    def restore() -> Ops[None]:
        yield run(stack, files.remove_tree(folder), what="clearing the restore folder")
        yield run(stack, files.install_dir(folder, 0o700), what="creating the restore folder")
        yield run(stack, _restic(stack, restic.restore(offsite.sftp_command, chosen.id, folder)), what="restoring the snapshot",
                  fix="check that the repository is reachable: inv db.offsite.list")

    try:
        executor(restore())
        dump = next(p for p in chosen.paths if p.endswith(".dump"))
        return pull(stack, f"{folder}{dump}", local_dir)
    finally:
        stack.target.run(files.remove_tree(folder), warn=True)
