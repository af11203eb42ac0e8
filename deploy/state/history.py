"""The release history and the audit log, kept on the target beside the lock.

``releases.json`` lists every deploy and rollback with its outcome; ``audit.log`` has a
JSON line for every mutating step: what, who, when.
"""
from __future__ import annotations

import getpass
import json
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from deploy.engine.stack import Stack


@dataclass
class Release:
    version: str
    status: str  # "success", "failed" (rolled back automatically), "running"
    kind: str = "deploy"  # or "rollback"
    tags: list[str] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # service -> image reference
    digests: dict[str, str] = field(default_factory=dict)  # service -> registry digest (or image id when not pushed)
    git_sha: str = ""
    hosts: list[str] = field(default_factory=list)  # the hosts it went to (none: the local engine)
    user: str = field(default_factory=lambda: f"{getpass.getuser()}@{socket.gethostname()}")
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # one run of a deploy or rollback
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration_seconds: float = 0.0
    compose_files: list[str] = field(default_factory=list)
    env_file: str = ""
    error: str = ""


def history(stack: Stack) -> list[Release]:
    """Oldest first."""
    text = stack.target.read_text(stack.state_file("releases.json"))
    return [Release(**r) for r in json.loads(text)] if text else []


def record(stack: Stack, release: Release) -> None:
    """Add ``release``, or replace the entry with the same start time and version."""
    entries = [r for r in history(stack) if r.id != release.id]
    entries.append(release)
    stack.target.write_text(stack.state_file("releases.json"), json.dumps([asdict(r) for r in entries], indent=2) + "\n")


def successful_versions(stack: Stack) -> list[str]:
    """Versions that were deployed (or rolled back to) successfully, oldest first, once each."""
    return list(dict.fromkeys(r.version for r in history(stack) if r.status == "success"))


def current(stack: Stack) -> Release | None:
    """The release now serving: the newest successful one."""
    done = [r for r in history(stack) if r.status == "success"]
    return done[-1] if done else None


def audit(stack: Stack, event: str, **details: Any) -> None:
    entry = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "who": f"{getpass.getuser()}@{socket.gethostname()}",
             "stage": stack.settings.stage.name, "event": event, **details}
    path = stack.state_file("audit.log")
    stack.target.write_text(path, (stack.target.read_text(path) or "") + json.dumps(entry, sort_keys=True) + "\n")


def pin_current(stack: Stack) -> Stack:
    """The stack with APP_VERSION set to the release now serving, unless the env sets it,
    so that `up`, `scale` and the rest keep the deployed images (never `latest`)."""
    if "APP_VERSION" in stack.settings.env:
        return stack
    serving = current(stack)
    if serving is None:
        return stack
    return stack.with_env(APP_VERSION=serving.version)
