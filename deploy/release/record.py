"""The record of a release: the one place a ``Release`` is made, the deploy lock,
history and audit held around it, and the run of its steps (a deploy's or a
rollback's) with every switched host returned when one fails."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from deploy.engine.ops import Executor
from deploy.engine.stack import Stack
from deploy.engine.steps import Step, perform
from deploy.fleet import Fleet
from deploy.release.switch import Mover
from deploy.state import history, lock
from deploy.state.history import Release
from deploy.state.lock_holder import LockInfo


def new_release(fleet: Fleet, version: str, kind: str, **fields: Any) -> Release:
    """A release of ``version`` to ``fleet`` (``kind``: deploy or rollback), running."""
    settings = fleet.settings
    return Release(version=version, status="running", kind=kind, hosts=fleet.host_names(),
                   compose_files=list(settings.stage.compose_files), env_file=str(settings.env_file), **fields)


def failed(release: Release, err: BaseException) -> None:
    release.status, release.error = "failed", str(getattr(err, "message", err) or err)


def run_recorded(fleet: Fleet, release: Release, steps: Sequence[Step], switch: Mover, executor: Executor,
                 finish: Callable[[], None] | None = None) -> None:
    """Perform ``steps`` as ``release`` (under the lock, in the history, each step in the
    audit), then ``finish`` (still under the lock); on any failure, Ctrl-C included, every
    host ``switch`` moved goes back to what it ran (all or nothing) and the failure is
    raised. When the lock was broken meanwhile (the run stopped at its next op), only the
    hosts still as this run left them go back: one changed since is the new holder's.
    Once the step before a push that runs is done, the release is recorded as ``pushed``:
    its version is never used again (choose_version)."""
    home = fleet.primary.stack
    before_push = step_before_push(steps)
    if before_push == "":
        release.pushed = True

    def done(name: str, seconds: float) -> None:
        history.audit(home, f"step {name}", version=release.version, seconds=round(seconds, 2))
        if name == before_push:
            release.pushed = True
            history.record(home, release)

    with recorded(home, release, f"{release.kind} {release.version}") as owner:
        try:
            perform(steps, executor, done)
        except BaseException as err:
            failed(release, err)  # the step's error, also if returning the hosts fails too
            if switch.ran and lock.ours(home, owner):
                executor.say(f"{release.kind} failed: rolling back")
                executor(switch.return_hosts())
            elif switch.ran:  # no lock to check any more: the undo of what it changed, and only that
                executor.say(f"{release.kind} stopped (its lock was broken): returning the hosts it switched that nobody changed since")
                executor.unchecked()(switch.return_hosts(only_as_left=True))
            raise
        if finish:
            finish()
        release.status = "success"


def step_before_push(steps: Sequence[Step]) -> str | None:
    """The step after which the release's images may be in the registry: the one before a
    push step that runs ("" when the push comes first; None: nothing is pushed)."""
    names = [s.name for s in steps]
    if "push" not in names or steps[names.index("push")].skipped:
        return None
    i = names.index("push")
    return names[i - 1] if i else ""


@contextmanager
def recorded(home: Stack, release: Release, purpose: str) -> Iterator[LockInfo]:
    """Hold the deploy lock on ``home`` while ``release`` runs (the lock names it, and its
    owner alone removes it); it is in the history as running, then with its outcome and
    duration, and its end is in the audit log. Yields the lock's owner."""
    started = time.monotonic()
    with lock.held(home, purpose, release_id=release.id, audited=False) as owner:
        try:
            history.record(home, release)
            history.audit(home, f"{release.kind} started", version=release.version)
            try:
                yield owner
            except BaseException as err:  # Ctrl-C too: the history must not say "running" forever
                if release.status == "running":
                    failed(release, err)
                raise
        finally:
            release.duration_seconds = round(time.monotonic() - started, 1)
            history.record(home, release)
            history.audit(home, f"{release.kind} {release.status}", version=release.version, error=home.settings.masked(release.error)[:500])
