"""Who holds the deploy lock, and whether they still live: the holder's details
(``LockInfo``, as ``holder.json`` keeps them), where a process runs (host name, boot id,
pid namespace), and the staleness judgement.

A lock is *stale* when its heartbeat is older than ``STALE_SECONDS``, wherever it was
taken, or at once when it was taken on this very kernel and pid namespace (same host
name, boot id and pid namespace) by a process that is gone: a pid means nothing in
another container that shares the host name, nor after a reboot.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone

STALE_SECONDS = 90.0  # a heartbeat older than this: the holder is gone (clocks agree within a minute: NTP)
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
    heartbeat: str = ""  # when the holder last said it lives (read from the heartbeat file; not in holder.json)


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def stamp() -> str:
    return _now().isoformat(timespec="seconds")


def seconds_since(when: str) -> float | None:
    try:
        return (_now() - datetime.fromisoformat(when)).total_seconds()
    except (TypeError, ValueError):
        return None


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
    age = seconds_since(info.heartbeat or info.since)
    if age is not None and age > STALE_SECONDS:
        return f"no heartbeat for {human_seconds(age)}"
    return ""


def is_stale(info: LockInfo, this_host: str | None = None) -> bool:
    here = this_process()
    return bool(stale_reason(info, (this_host, *here[1:]) if this_host else here))

