"""The release history and the audit log, kept on the target beside the lock.

``releases.jsonl`` has a JSON line for every change of a deploy or rollback (recorded,
or updated in place), which readers fold into the history; ``audit.log`` has a JSON
line for every mutating step: what, who, when. Both are only ever appended to, a line
in one write (``Target.append_text``): writers at the same time (a deploy and a
backup, hosts' threads) never lose each other's lines. ``releases.json``, the whole
history as one array that earlier versions rewrote, is still read first, and never
written. Both are written with every secret of the stage masked (``Settings.masked``):
errors carry containers' last log lines.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from deploy.engine.images import Pinned, is_digest
from deploy.engine.stack import Stack
from deploy.errors import fail
from deploy.versions import SEMVER, Version, parse

INTERRUPTED = "interrupted"
JOURNAL = "releases.jsonl"  # the history's changes, a JSON line each: {"record": RELEASE} or {"update": RELEASE}
LEGACY = "releases.json"  # the history as one array (written by earlier versions): read first, never written
RECORD, UPDATE = "record", "update"  # recorded (moved to the end) or updated in its place


@dataclass
class Release:
    version: str
    # "success", "failed" (rolled back automatically), "running", "interrupted" (its
    # process died, or its lock was broken, before it recorded an outcome)
    status: str
    kind: str = "deploy"  # or "rollback"
    tags: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # service -> image reference
    # service -> the digest it was pushed as (REPOSITORY@sha256:..., what hosts pull), or its image id when not pushed
    digests: dict[str, str] = field(default_factory=dict)
    git_sha: str = ""
    hosts: list[str] = field(default_factory=list)  # the hosts it went to (none: the local engine)
    user: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # one run of a deploy or rollback
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    duration_seconds: float = 0.0
    compose_files: list[str] = field(default_factory=list)
    env_file: str = ""
    error: str = ""
    pushed: bool = False  # its push step began: images of this version may be in the registry (never reused)


FIELDS = {f.name for f in dataclasses.fields(Release)}


def masked(stack: Stack, value: Any) -> Any:
    """``value`` (strings, lists and dicts of them) with every secret of the stage masked."""
    if isinstance(value, str):
        return stack.settings.masked(value)
    if isinstance(value, list):
        return [masked(stack, v) for v in value]
    if isinstance(value, dict):
        return {k: masked(stack, v) for k, v in value.items()}
    return value


def history(stack: Stack) -> list[Release]:
    """Oldest first (``folded``)."""
    target = stack.target
    path = stack.state_file(JOURNAL)
    return folded(target.read_text(path) or "", f"{path} on {target.name}", target.read_text(stack.state_file(LEGACY)))


def folded(journal: str, where: str, legacy: str | None = None) -> list[Release]:
    """The history: the releases of the old array file (``legacy``), then the journal's
    changes in order (a release recorded again moves to the end; one updated keeps its
    place). ``where`` names the journal in the error a broken line gives."""
    entries: dict[str, Release] = {}
    for r in json.loads(legacy) if legacy else []:
        fold(entries, RECORD, r)
    for n, line in enumerate(journal.splitlines(), 1):
        if not line.strip():
            continue
        try:
            ((change, r),) = json.loads(line).items()
            fold(entries, change, r)
        except (ValueError, TypeError, AttributeError, KeyError):
            fail(f"line {n} of {where} is not a change of the release history",
                 "remove or fix that line (a write cut short); the other lines are the history")
    return list(entries.values())


def fold(entries: dict[str, Release], change: str, fields: dict[str, Any]) -> None:
    """One change of the journal applied to ``entries`` (by release id, in order)."""
    if change not in (RECORD, UPDATE):
        raise KeyError(change)
    release = Release(**{k: v for k, v in fields.items() if k in FIELDS})
    if change == RECORD:
        entries.pop(release.id, None)
    entries[release.id] = release


def _append(stack: Stack, change: str, releases: list[Release]) -> None:
    lines = [json.dumps({change: masked(stack, asdict(r))}, sort_keys=True) + "\n" for r in releases]
    stack.target.append_text(stack.state_file(JOURNAL), "".join(lines))


def record(stack: Stack, release: Release) -> None:
    """Add ``release``, or replace the entry with the same id (moved to the end)."""
    _append(stack, RECORD, [release])


def interrupt_running(stack: Stack, why: str) -> list[Release]:
    """Mark every release still ``running`` as ``interrupted`` (with ``why``), in place.
    Called when no process can be running one any more: its lock was broken, found
    stale, or taken by another task. Returns the releases marked."""
    entries = history(stack)
    running = [r for r in entries if r.status == "running"]
    for r in running:
        r.status, r.error = INTERRUPTED, why
    if running:
        _append(stack, UPDATE, running)
    return running


def successful_versions(stack: Stack) -> list[str]:
    """Versions that were deployed (or rolled back to) successfully, oldest first, once each."""
    return list(dict.fromkeys(r.version for r in history(stack) if r.status == "success"))


def current(stack: Stack) -> Release | None:
    """The release now serving: the newest successful one."""
    done = [r for r in history(stack) if r.status == "success"]
    return done[-1] if done else None


def known_version(text: str) -> Version | None:
    """``text`` as a version when it is one (history entries written by hand may not be)."""
    m = SEMVER.match(text or "")
    return parse(text) if m and not m.group(5) else None


def pushed_by(entries: list[Release], version: str) -> list[Release]:
    """The deploys of ``version`` whose images may be in the registry: the successful
    ones, and those whose push step began (whatever became of them)."""
    return [r for r in entries if r.version == version and r.kind == "deploy" and (r.pushed or r.status == "success")]


def pins(entries: list[Release], version: str) -> dict[str, Pinned]:
    """The app images of ``version`` as its newest successful release with digests
    recorded them (a rollback records those of the deploy it returned to): what hosts
    pull and run. Empty when none did (recorded by an older version: pulled by tag)."""
    done = [r for r in entries if r.version == version and r.status == "success" and r.images]
    for r in reversed(done):
        found = {s: Pinned(ref, r.digests[s]) for s, ref in r.images.items() if is_digest(r.digests.get(s, ""))}
        if found:
            return found
    return {}


def audit(stack: Stack, event: str, **details: Any) -> None:
    entry = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "who": f"{getpass.getuser()}@{socket.gethostname()}",
             "stage": stack.settings.stage.name, "event": event, **details}
    path = stack.state_file("audit.log")
    stack.target.append_text(path, json.dumps(masked(stack, entry), sort_keys=True) + "\n")


def pin_current(stack: Stack) -> Stack:
    """The stack with APP_VERSION set to the release now serving, unless the env sets it,
    so that `up`, `scale` and the rest keep the deployed images (never `latest`)."""
    if "APP_VERSION" in stack.settings.env:
        return stack
    serving = current(stack)
    if serving is None:
        return stack
    return stack.with_env(APP_VERSION=serving.version)
