"""Who holds the deploy lock, and whether they still live: the holder's details
(``LockInfo``, as ``holder.json`` keeps them), where a process runs (host name, boot id,
pid namespace), and the staleness judgement.

A lock is *stale* when its heartbeat is older than ``STALE_SECONDS``, wherever it was
taken (the age measured on the target that keeps the lock, by its own clock: the holder's
and the reader's clocks are never compared), or at once when it was taken on this very kernel and pid namespace (same host
name, boot id and pid namespace) by a process that is gone: a pid means nothing in
another container that shares the host name, nor after a reboot.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone

STALE_SECONDS = 90.0  # a heartbeat older than this (9 missed beats): the holder is gone, or stopped (then it stops on waking)
BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass(frozen=True)
class LockInfo:
    user: str
    host: str
    pid: int
    since: str
    purpose: str
    token: str = ""  # the owner's random token ("" in a lock written before tokens: judged by host and pid only)
    boot_id: str = ""  # the holder's kernel (a reboot changes it)
    pidns: str = ""  # the holder's pid namespace (containers sharing a host name differ)
    release_id: str = ""  # the release (history entry) it guards, if any
    age: float | None = None  # seconds since the holder last said it lives, on the target's clock (not in holder.json)


FIELDS = {f.name for f in dataclasses.fields(LockInfo)}


def _read_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def this_process() -> tuple[str, str, str]:
    """(host name, boot id, pid namespace) of this process: where a pid means this process."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return socket.gethostname(), _read_file(BOOT_ID), pidns


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stamp() -> str:
    """Now, for people (the lock's ``since``); never compared with another clock."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def human_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60} s"


def stale_reason(info: LockInfo, here: tuple[str, str, str] | None = None) -> str:
    """Why the lock's holder is gone ("" when it may still run, or cannot be judged)."""
    host, boot_id, pidns = here or this_process()
    if not info.token:  # a lock from before heartbeats: only a pid on this host can be judged
        return "its process is gone" if info.host == host and info.pid and not pid_alive(info.pid) else ""
    if (info.host, info.boot_id, info.pidns) == (host, boot_id, pidns) and not pid_alive(info.pid):
        return "its process is gone"
    if info.age is not None and info.age > STALE_SECONDS:
        return f"no heartbeat for {human_seconds(info.age)}"
    return ""


def is_stale(info: LockInfo, this_host: str | None = None) -> bool:
    here = this_process()
    return bool(stale_reason(info, (this_host, *here[1:]) if this_host else here))

