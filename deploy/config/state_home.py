"""Where the state of a stage on the local engine lives: its deploy lock, release
history, audit log, scale counts, routing and certificate (``PROJECT/STAGE/`` inside).

An explicit ``deploy.state_dir`` (or ``INVOKE_DEPLOY_STATE_DIR``) wins, relative to the
checkout. Without one, the state is of the machine, not of a checkout, so that every
checkout on it (an operator's, CI's) shares one lock and one history for the one stack
the engine runs: ``/var/lib/compose-deploy`` when this user may write there, else
``$XDG_STATE_HOME/compose-deploy`` (``~/.local/state/compose-deploy``), keyed by the
stage's Compose project and the stage. A stage's folder of the old default (``.deploy``
in the checkout) is moved there the first time (a rename: atomic, and a running proxy's
bind mount follows it), with a message; when it cannot be moved (another file system,
a task holding its lock) it is used where it is.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from deploy.output import say

MACHINE_DIR = Path("/var/lib/compose-deploy")
CHECKOUT_DIR = ".deploy"  # the default before: a folder of the checkout


def _writable(path: Path) -> bool:
    """``path`` is a folder this user may write into, or could be made by this user."""
    if path.exists():
        return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
    return path.parent.is_dir() and os.access(path.parent, os.W_OK | os.X_OK)


def machine_dir(environ: Mapping[str, str] | None = None) -> Path:
    """This machine's folder for the state of every local stage."""
    if _writable(MACHINE_DIR):
        return MACHINE_DIR
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    return base / "compose-deploy"


def state_root(root: Path, state_dir: str, environ: Mapping[str, str] | None = None) -> Path:
    """The folder holding ``PROJECT/STAGE/`` of every local stage: ``state_dir`` (of the
    checkout ``root``) when set, else ``machine_dir``."""
    return root / state_dir if state_dir else machine_dir(environ)


@functools.cache
def stage_dir(root: Path, state_dir: str, project: str, stage: str) -> Path:
    """The state folder of ``stage`` (Compose project ``project``) on the local engine;
    the first call of a process moves (or keeps using) a folder of the old default."""
    new = state_root(root, state_dir) / project / stage
    if state_dir:
        return new
    old = root / CHECKOUT_DIR / project / stage
    if not old.is_dir() or new.exists():
        return new
    if (old / "deploy.lock").exists():
        say(f"note: the state of {project}/{stage} stays in {old} for now (a task holds its lock); "
            f"it moves to {new} once the lock is free")
        return old
    try:
        new.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.rename(old, new)
    except OSError as err:
        say(f"note: the state of {project}/{stage} stays in {old} ({err.strerror}); "
            f"move it to {new} by hand while no task runs, or set deploy.state_dir")
        return old
    say(f"moved the state of {project}/{stage} (lock, release history, audit log) from {old} to {new}: "
        "it is of this machine now, shared by every checkout (docs/deploying.md, \"Where the state lives\")")
    return new
