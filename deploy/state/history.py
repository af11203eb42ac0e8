"""The release history and the audit log, kept on the target beside the lock.

``releases.json`` lists every deploy and rollback with its outcome; ``audit.log`` has a
JSON line for every mutating step: what, who, when. Both are written with every secret
of the stage masked (``Settings.masked``): errors carry containers' last log lines.
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

from deploy.engine.stack import Stack
from deploy.versions import SEMVER, Version, parse

INTERRUPTED = "interrupted"


@dataclass
class Release:
    version: str
    # "success", "failed" (rolled back automatically), "running", "interrupted" (its
    # process died, or its lock was broken, before it recorded an outcome)
    status: str
    kind: str = "deploy"  # or "rollback"
    tags: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # service -> image reference
    digests: dict[str, str] = field(default_factory=dict)  # service -> registry digest (or image id when not pushed)
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
    """Oldest first."""
    text = stack.target.read_text(stack.state_file("releases.json"))
    return [Release(**{k: v for k, v in r.items() if k in FIELDS}) for r in json.loads(text)] if text else []


def _write(stack: Stack, entries: list[Release]) -> None:
    data = masked(stack, [asdict(r) for r in entries])
    stack.target.write_text(stack.state_file("releases.json"), json.dumps(data, indent=2) + "\n")


def record(stack: Stack, release: Release) -> None:
    """Add ``release``, or replace the entry with the same id (moved to the end)."""
    entries = [r for r in history(stack) if r.id != release.id]
    entries.append(release)
    _write(stack, entries)


def interrupt_running(stack: Stack, why: str) -> list[Release]:
    """Mark every release still ``running`` as ``interrupted`` (with ``why``), in place.
    Called when no process can be running one any more: its lock was broken, found
    stale, or taken by another task. Returns the releases marked."""
    entries = history(stack)
    running = [r for r in entries if r.status == "running"]
    for r in running:
        r.status, r.error = INTERRUPTED, why
    if running:
        _write(stack, entries)
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


def audit(stack: Stack, event: str, **details: Any) -> None:
    entry = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "who": f"{getpass.getuser()}@{socket.gethostname()}",
             "stage": stack.settings.stage.name, "event": event, **details}
    path = stack.state_file("audit.log")
    line = json.dumps(masked(stack, entry), sort_keys=True)
    stack.target.write_text(path, (stack.target.read_text(path) or "") + line + "\n")


def pin_current(stack: Stack) -> Stack:
    """The stack with APP_VERSION set to the release now serving, unless the env sets it,
    so that `up`, `scale` and the rest keep the deployed images (never `latest`)."""
    if "APP_VERSION" in stack.settings.env:
        return stack
    serving = current(stack)
    if serving is None:
        return stack
    return stack.with_env(APP_VERSION=serving.version)
