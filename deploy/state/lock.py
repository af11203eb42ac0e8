"""The deploy lock: one mutating task at a time per project and stage (deploy, rollback,
up, down, scale, clean, db.restore, db.migrate, db.seed).

Taken with an atomic ``mkdir`` on the target (Kamal's way), with a details file
(``holder.json``) saying who holds it, since when, for what, the release it guards, and a
random owner token. Only the owner releases it (a lock broken and taken by someone else
is theirs, and stays). While it is held, a background thread of the owner refreshes a
heartbeat file beside it every ``HEARTBEAT_SECONDS``, and the owner checks its token
before every op it applies (deploy.engine.ops.checked_by): a holder whose lock was
broken stops (``LockLost``), undoing only what it changed.

A lock whose holder is gone is *stale* (the holder's details and that judgement:
deploy.state.lock_holder); the heartbeat's age is measured on the target, by its own
clock. A stale lock is reported as such and broken with ``inv lock.release`` (any lock
with ``--force``): the break is in the audit log, and the release the lock guarded is
marked ``interrupted``. Releasing and breaking first rename the lock aside (atomic),
then check that it is the one judged (its token); one that changed hands is put back.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from deploy.engine.commands import files
from deploy.engine.ops import checked_by
from deploy.engine.stack import Stack
from deploy.engine.target import Target
from deploy.errors import fail
from deploy.output import say
from deploy.state import history
from deploy.state.lock_holder import FIELDS, LockInfo, human_seconds, stale_reason, stamp, this_process

HEARTBEAT_SECONDS = 10.0  # how often the holder refreshes its heartbeat
POLL_SECONDS = 1.0  # how often a task waiting for the lock (--wait-lock) looks again
_held: dict[tuple[str, str], LockInfo] = {}  # locks this process holds: (target, path) -> its details
_held_guard = threading.Lock()


def _path(stack: Stack) -> str:
    return stack.state_file("deploy.lock")


def _details(stack: Stack) -> str:
    return f"{_path(stack)}/holder.json"


def _beat(stack: Stack, token: str) -> str:
    """The heartbeat file of the owner ``token``: beside the lock, not in it, so that a late
    beat of a lock already broken never makes its directory again."""
    return stack.state_file(f"deploy.lock.{token}.heartbeat")


class LockLost(BaseException):
    """The lock this process held is not its own any more (broken, perhaps taken by
    another task): what runs stops. A BaseException, as Ctrl-C: a workflow's cleanup
    (``except BaseException``, re-raised) undoes what it did; nothing carries on."""


def _token(stack: Stack, directory: str) -> str | None:
    """The owner token of the lock in ``directory`` ("" for one without a token or details
    file); None when there is no lock there."""
    text = stack.target.read_text(f"{directory}/holder.json")
    if text is None:
        return "" if stack.target.run(files.is_dir(directory), warn=True).ok else None
    with suppress(ValueError, AttributeError):
        return str(json.loads(text).get("token") or "")
    return ""


def _age(stack: Stack, token: str) -> float | None:
    """Seconds since the holder ``token`` last said it lives (its heartbeat, else its
    details written at taking), on the target's clock; None when it cannot be told."""
    done = stack.target.run(files.age_seconds(_beat(stack, token), _details(stack)), warn=True)
    try:
        return float(done.stdout.strip()) if done.ok else None
    except ValueError:
        return None


def read(stack: Stack) -> LockInfo | None:
    text = stack.target.read_text(_details(stack))
    if text is None:
        exists = stack.target.run(files.is_dir(_path(stack)), warn=True).ok
        return LockInfo("unknown", "unknown", 0, "unknown", "unknown (no details file)") if exists else None
    info = LockInfo(**{k: v for k, v in json.loads(text).items() if k in FIELDS and k != "age"})
    return dataclasses.replace(info, age=_age(stack, info.token)) if info.token else info


def describe(info: LockInfo) -> str:
    text = f"{info.purpose} by {info.user}@{info.host} (pid {info.pid}) since {info.since}"
    if info.token and info.age is not None:
        text += f", last heartbeat {human_seconds(info.age)} ago"
    if info.release_id:
        text += f", release {info.release_id}"
    why = stale_reason(info)
    return text + (f" [STALE: {why}]" if why else "")


def _write_details(target: Target, path: str, info: LockInfo) -> None:
    target.write_text(path, json.dumps({k: v for k, v in dataclasses.asdict(info).items() if k != "age"}) + "\n")


def acquire(stack: Stack, purpose: str, release_id: str = "", wait: float = 0.0) -> LockInfo:
    """Take the lock for ``purpose``, waiting up to ``wait`` seconds while a live holder has
    it; refused (naming the holder) after that, at once when the holder is gone (stale).
    Returns the owner's details (with its token). Releases left ``running`` in the history
    are marked ``interrupted`` once the lock is taken: no process holds the lock that
    guarded them any more. A refusal marks nothing: the holder judged stale may still run."""
    stack.target.run(files.make_dirs(os.path.dirname(_path(stack))))
    deadline = time.monotonic() + wait
    waiting = False
    while not (made := stack.target.run(files.make_dir(_path(stack)), warn=True)).ok:
        if not stack.target.run(files.is_dir(_path(stack)), warn=True).ok:  # no lock there: mkdir itself failed
            fail(f"cannot take the deploy lock on {stack.target.name}: {(made.stderr or made.stdout).strip()[-300:]}",
                 f"check that {os.path.dirname(_path(stack))} is writable by this user (a state directory made by root?)")
        info = read(stack)
        stale = bool(info and stale_reason(info))
        left = deadline - time.monotonic()
        if info is not None and (stale or left <= 0):  # refused: its release stays as it is (only a break marks it)
            waited = f" (waited {wait:g} s)" if wait else ""
            fix = "break it: inv lock.release" if stale else "wait for it to finish (inv lock.status), or retry with --wait-lock SECONDS"
            fail(f"another deploy holds the lock: {describe(info)}{waited}", fix)
        if info is None and left <= 0:  # a lock without details: being taken right now, or its taker died
            fail(f"another task holds the lock on {stack.target.name} and has not written who it is",
                 "retry in a moment; if it stays, check inv lock.status and break it with inv lock.release --force")
        if info is not None and not waiting:
            say(f"waiting up to {wait:g} s for the deploy lock: {describe(info)}")
            waiting = True
        time.sleep(max(0.05, min(POLL_SECONDS, left)))
    host, boot_id, pidns = this_process()
    info = LockInfo(getpass.getuser(), host, os.getpid(), stamp(), purpose, secrets.token_hex(16), boot_id, pidns, release_id)
    _write_details(stack.target, _details(stack), info)
    history.interrupt_running(stack, "interrupted: it ended without recording an outcome (its lock was gone)")
    return info


def ours(stack: Stack, owner: LockInfo) -> bool:
    """Whether the lock is still ``owner``'s (its token is the one there)."""
    return _token(stack, _path(stack)) == owner.token


def ensure_ours(stack: Stack, owner: LockInfo) -> None:
    """Raise ``LockLost`` unless the lock is still ``owner``'s: the check before each op."""
    if not ours(stack, owner):
        raise LockLost(f"the deploy lock on {stack.target.name} was broken while this task ({owner.purpose}) held it: it stopped")


def refresh(stack: Stack, owner: LockInfo) -> bool:
    """The owner's heartbeat; False (and nothing written) when the lock is not the
    owner's any more (broken, and perhaps taken by someone else)."""
    if not ours(stack, owner):
        return False
    stack.target.write_text(_beat(stack, owner.token), json.dumps({"at": stamp()}) + "\n")
    return True


def _aside(stack: Stack, token: str) -> str | None:
    """Rename the lock aside (atomic: meanwhile no one releases, breaks or takes it) if it
    is the one of ``token``; the name it has now. None when there was no lock, or another
    one (which is put back)."""
    aside = stack.state_file(f"deploy.lock.aside.{secrets.token_hex(8)}")
    if not stack.target.run(files.move_new(_path(stack), aside), warn=True).ok:
        return None  # no lock there
    moved = _token(stack, aside)
    if moved == token:
        return aside
    if moved is not None:
        stack.target.run(files.move_new(aside, _path(stack)), warn=True)
        if _token(stack, aside) is not None:  # a third task took the lock in that moment: its lock stays, this one goes
            stack.target.run(files.remove_tree(aside), warn=True)
    return None


def release(stack: Stack, owner: LockInfo) -> bool:
    """Remove the lock if it is still ``owner``'s; False when it is not (it was broken: a
    lock someone else took since is theirs, and stays)."""
    aside = _aside(stack, owner.token)
    if aside:
        stack.target.run(files.remove_tree(aside))
    stack.target.run(files.remove_tree(_beat(stack, owner.token)), warn=True)
    return aside is not None


def break_lock(stack: Stack, force: bool = False) -> LockInfo | None:
    """``inv lock.release``: remove a stale lock, or any with ``force``. The lock judged is
    renamed aside first and removed only if it is still that one (its token). The break is
    in the audit log (who broke whose lock); the release it guarded is marked ``interrupted``."""
    info = read(stack)
    if info is None:
        return None
    why = stale_reason(info)
    if not force and not why:
        fail(f"the lock is held by a running task: {describe(info)}", "wait for it, or pass --force if you are sure it is dead")
    aside = _aside(stack, info.token)
    if aside is None:
        fail(f"the lock on {stack.target.name} changed hands while it was being broken: it was left alone",
             "see inv lock.status, and break it again if its new holder is gone")
    stack.target.run(files.remove_tree(aside))
    if info.token:
        stack.target.run(files.remove_tree(_beat(stack, info.token)), warn=True)
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    marked = history.interrupt_running(stack, f"interrupted: its lock was broken by {me} ({why or 'forced'})")
    history.audit(stack, "lock broken", forced=not why, stale=why, holder=f"{info.user}@{info.host}", pid=info.pid,
                  purpose=info.purpose, since=info.since, release=info.release_id, interrupted=[r.id for r in marked])
    return info


class Heartbeat(threading.Thread):
    """The owner's heartbeat while it holds the lock (what keeps it from being stale); it
    stops when the lock is no longer the owner's (the owner's check stops the task). A
    host gets a connection of its own (an SFTP session is not shared between threads)."""

    def __init__(self, stack: Stack, owner: LockInfo) -> None:
        super().__init__(name="deploy-lock-heartbeat", daemon=True)
        self.target = _own_target(stack.target)
        self.own_connection = self.target is not stack.target
        self.stack = Stack(stack.settings, self.target)
        self.owner = owner
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                if not refresh(self.stack, self.owner):
                    say("warning: the deploy lock was broken while this task held it (inv lock.status)")
                    return
            except Exception:  # noqa: BLE001 (a missed beat: the next one tries again)
                continue

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=HEARTBEAT_SECONDS)
        if self.own_connection:
            with suppress(Exception):
                self.target.close()


def _own_target(target: Target) -> Target:
    """``target`` for another thread: a host over SSH gets a new connection."""
    if target.local:
        return target
    from deploy.engine.remote import RemoteTarget  # only when there are hosts (paramiko: CLI start time)

    if isinstance(target, RemoteTarget):
        return RemoteTarget(target.host, target.ssh, target.accept_new)
    return target


def _error(err: BaseException) -> str:
    return str(getattr(err, "message", "") or err or type(err).__name__)


@contextmanager
def held(stack: Stack, purpose: str, *, wait: float = 0.0, release_id: str = "", audited: bool = True,
         **details: Any) -> Iterator[LockInfo]:
    """Hold the deploy lock of ``stack`` (a stage's primary: the db host) for ``purpose``
    (e.g. ``up``, ``db.restore``, ``deploy 1.4.0``) while the block runs: waiting up to
    ``wait`` seconds for another holder, with a heartbeat, released only if still ours.
    With ``audited``, the start and the outcome (success, failed, interrupted; the error
    masked) are audit lines with ``details``. Every op applied in the block is first
    checked to be under this lock still; when it is not (broken), the block ends with the
    error of ``LockLost`` (after what ran undid its changes). Re-entrant: a block inside
    another of this process (a deploy task around its release) only records ``purpose``
    and ``release_id``."""
    key = (stack.target.name, _path(stack))
    with _held_guard:
        mine = _held.get(key)
    if mine is None:
        owner = acquire(stack, purpose, release_id, wait)
    else:
        owner = dataclasses.replace(mine, purpose=purpose, release_id=release_id or mine.release_id)
        if ours(stack, mine):
            _write_details(stack.target, _details(stack), owner)
    with _held_guard:
        _held[key] = owner
    beat = Heartbeat(stack, owner) if mine is None else None
    if beat:
        beat.start()
    outcome, error = "success", ""
    try:
        if audited:
            history.audit(stack, f"{purpose} started", **details)
        if beat:
            with checked_by(lambda: ensure_ours(stack, owner)):
                yield owner
        else:
            yield owner
    except LockLost as err:
        outcome, error = "stopped", _error(err)
        fail(error, "see inv lock.status and inv status: what it had changed was undone, unless someone changed it since")
    except BaseException as err:
        outcome = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        error = _error(err)
        raise
    finally:
        try:
            if audited:
                history.audit(stack, f"{purpose} {outcome}", **details, **({"error": stack.settings.masked(error)[:500]} if error else {}))
        finally:
            with _held_guard:
                if mine is None:
                    _held.pop(key, None)
                else:
                    _held[key] = mine
            if beat:
                beat.stop()
                if not release(stack, owner):
                    say("warning: the deploy lock was broken while this task held it; "
                        "it was left to its new holder (inv lock.status)")
                    history.audit(stack, "lock lost", purpose=purpose, note="broken while held; left to its new holder")
