"""The offsite repository's retention, run from the operator's machine (``inv
db.offsite.prune``; docs/backups.md, "Offsite copies"): for a repository the db host may only
append to (``offsite.append_only``: restic's REST protocol served append-only), from
which only someone else can delete.

restic runs here with this machine's own variables (``offsite.admin_env_file``: the
repository's storage itself, a path or ``sftp:`` to the storage host, and its password),
never the db host's. The policy is the stage's as invoke.yaml here says it
(``offsite.policy`` of ``deploy.retention``, as the scheduled job gets it), never read
from the db host: whoever owns that host does not choose what is deleted.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from deploy.config import masking
from deploy.config.settings import read_env_file
from deploy.database.offsite import config, snapshot, tag
from deploy.engine.commands import restic
from deploy.engine.stack import Stack, last_lines
from deploy.errors import fail
from deploy.retention import BUCKETS, Listed, Policy

PASSWORD_VARIABLES = ("RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_PASSWORD")
Verdicts = list[tuple[Listed, tuple[str, ...]]]


def admin_env_path(stack: Stack) -> Path:
    """``offsite.admin_env_file`` (relative to the project's folder), or a clear error."""
    offsite, s = config(stack), stack.settings
    if not offsite.admin_env_file:
        fail(f"the stage {s.stage.name} has no offsite.admin_env_file: the credentials of this machine for the repository",
             f"write an env file here (chmod 600) with RESTIC_REPOSITORY (the repository's storage itself: a path, or sftp: to "
             f"the storage host) and RESTIC_PASSWORD_FILE, and name it in deploy.stages.{s.stage.name}.offsite.admin_env_file "
             "(docs/backups.md, \"Offsite copies\")")
    path = Path(offsite.admin_env_file).expanduser()
    return path if path.is_absolute() else s.config.root / path


def admin_env(stack: Stack) -> dict[str, str]:
    """restic's variables of ``offsite.admin_env_file`` (a dotenv file, like the stage's),
    checked: private to its owner, naming a repository and a password, and not the
    append-only URL the db host writes through (it refuses deletes)."""
    offsite, path = config(stack), admin_env_path(stack)
    if not path.is_file():
        fail(f"offsite.admin_env_file {path} not found",
             "create it (chmod 600): RESTIC_REPOSITORY=... (the repository's storage itself) and RESTIC_PASSWORD_FILE=...")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        fail(f"{path} is readable by others (mode {mode:04o}): it opens the offsite repository", f"chmod 600 {path}")
    env = read_env_file(path)
    repository = env.get("RESTIC_REPOSITORY", "")
    if not repository:
        fail(f"{path} sets no RESTIC_REPOSITORY", "set it to the repository's storage itself: a path, or sftp:user@storage-host:/path")
    if not any(env.get(v) for v in PASSWORD_VARIABLES):
        fail(f"{path} sets none of {', '.join(PASSWORD_VARIABLES)}", f"set RESTIC_PASSWORD_FILE in {path} (a file of this machine, 0600)")
    if offsite.append_only and repository.rstrip("/") == offsite.repository.rstrip("/"):
        fail(f"{path}'s RESTIC_REPOSITORY is the append-only URL the db host writes through: it refuses to delete",
             "point RESTIC_REPOSITORY at the repository's storage itself (a path, or sftp: to the storage host)")
    return env


def prune(stack: Stack, p: Policy, dry_run: bool) -> Verdicts:
    """restic's retention ``p`` over the stage's snapshots, run on ``stack``'s target (this
    machine) with the admin variables, in UTC like the scheduled job: each snapshot,
    newest first, with why it is kept (empty: forgotten and its data pruned, unless
    ``dry_run``)."""
    env = {**admin_env(stack), "TZ": "UTC"}
    result = stack.target.run(restic.forget("", tag(stack), p, report=True, dry_run=dry_run), env=env, warn=True)
    if not result.ok:
        said = masking.mask(stack.settings.masked(last_lines(result.stderr, 3)), masking.secret_values(env, ()))
        fail(f"restic forget failed here: {said}",
             f"check that this machine reaches RESTIC_REPOSITORY of {admin_env_path(stack)} and has restic (apt-get install restic)")
    return parse_forget(result.stdout, p)


def parse_forget(text: str, p: Policy) -> Verdicts:
    """``restic forget --json`` (pure): each snapshot, newest first, with why restic keeps
    it in db.prune's words (``newest 30``, ``daily 2026-11-28``; restic's own for the rest,
    e.g. ``within 24h``); empty for those it forgets."""
    verdicts: Verdicts = []
    for group in json.loads(text or "[]") or []:
        reasons = {(r["snapshot"]["time"], r["snapshot"].get("tree")): r.get("matches") or []
                   for r in group.get("reasons") or []}
        for raw in group.get("keep") or []:
            snap = _listed(raw)
            matches = reasons.get((raw["time"], raw.get("tree"))) or ["kept by restic"]
            verdicts.append((snap, tuple(_why(m, snap.created, p) for m in matches)))
        verdicts += [(_listed(raw), ()) for raw in group.get("remove") or []]
    return sorted(verdicts, key=lambda v: v[0].created, reverse=True)


def _listed(raw: dict[str, object]) -> Listed:
    snap = snapshot(raw)
    return Listed(f"{snap.short_id} {snap.backup}".strip(), snap.time.astimezone(timezone.utc))


def _why(match: str, created: datetime, p: Policy) -> str:
    rule = match.removesuffix(" snapshot")
    if rule == "last":
        return f"newest {p.last}"
    fmt = dict(BUCKETS).get(rule)
    return f"{rule} {created:{fmt}}" if fmt else match
