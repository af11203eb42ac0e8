"""The deploy lock: one deploy (or rollback) at a time per project and stage.

Taken with an atomic ``mkdir`` on the target (Kamal's way), with a details file saying
who holds it, since when, and for what. A lock whose process is gone is *stale*: it is
reported as such and can be broken with ``inv lock.release``.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from deploy.engine.commands import files
from deploy.engine.stack import Stack
from deploy.errors import fail


@dataclass(frozen=True)
class LockInfo:
    user: str
    host: str
    pid: int
    since: str
    purpose: str


def _path(stack: Stack) -> str:
    return stack.state_file("deploy.lock")


def _details(stack: Stack) -> str:
    return f"{_path(stack)}/holder.json"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(info: LockInfo, this_host: str | None = None) -> bool:
    """Stale when it was taken on this host by a process that no longer runs. (A lock
    taken from another machine cannot be judged from here.)"""
    return info.host == (this_host or socket.gethostname()) and not pid_alive(info.pid)


def read(stack: Stack) -> LockInfo | None:
    text = stack.target.read_text(_details(stack))
    if text is None:
        exists = stack.target.run(files.is_dir(_path(stack)), warn=True).ok
        return LockInfo("unknown", "unknown", 0, "unknown", "unknown (no details file)") if exists else None
    return LockInfo(**json.loads(text))


def describe(info: LockInfo) -> str:
    stale = " [STALE: its process is gone]" if is_stale(info) else ""
    return f"{info.purpose} by {info.user}@{info.host} (pid {info.pid}) since {info.since}{stale}"


def acquire(stack: Stack, purpose: str) -> LockInfo:
    stack.target.run(files.make_dirs(os.path.dirname(_path(stack))))
    if not stack.target.run(files.make_dir(_path(stack)), warn=True).ok:
        info = read(stack)
        held = describe(info) if info else "a lock that vanished just now"
        fix = "break it: inv lock.release" if info and is_stale(info) else "wait for it to finish (inv lock.status)"
        fail(f"another deploy holds the lock: {held}", fix)
    info = LockInfo(getpass.getuser(), socket.gethostname(), os.getpid(), datetime.now(UTC).isoformat(timespec="seconds"), purpose)
    stack.target.write_text(_details(stack), json.dumps(asdict(info)) + "\n")
    return info


def release(stack: Stack, force: bool = False) -> LockInfo | None:
    """Remove the lock; a live holder's lock only with ``force``."""
    info = read(stack)
    if info is None:
        return None
    if not force and not is_stale(info):
        fail(f"the lock is held by a running deploy: {describe(info)}", "wait for it, or pass --force if you are sure it is dead")
    stack.target.run(files.remove_tree(_path(stack)))
    return info
