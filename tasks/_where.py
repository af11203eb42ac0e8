"""Where a task acts, and the one way every task gets the flags that say so.

Each task is declared with one of three decorators, which make it an Invoke task (with
the chosen short flags, ``tasks._flags``), add the flags of its kind with their help,
and hand them to the task as ``where: Where``:

- ``on_stage``: on this machine only (its env files, engine, backup storage):
  --stage, --env-file;
- ``on_hosts``: on the stage's hosts, or the local engine: also --hosts, --roles,
  --accept-new-host-keys;
- ``on_host``: on one of them: --host instead of --hosts and --roles.

A task that changes the stage gets --wait-lock: how long it waits for the deploy lock
while another task holds it (``Where.lock_wait``). With ``held="NAME"`` the decorator
holds the lock (on the stage's primary) around the whole task, named NAME and audited
with the flags given, unless ``reads_only`` says this call changes nothing (default: a
--dry-run); with ``locks=True`` the task takes it itself (its lock names a version, a
release, a file).

Listing the tasks and their help loads this module and no part of the library: what
runs a task is imported when it runs (tests/unit/test_cli_startup.py).
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tasks._flags import Task
from tasks._input import optional_number

STAGE_HELP = {
    "stage": "stage from invoke.yaml deploy.stages (default: deploy.default_stage)",
    "env_file": "env file to use instead of the stage's own",
}
HOSTS_HELP = {
    "hosts": "only these hosts of the stage (h1,h2); without a stage: one host by address or ~/.ssh/config alias",
    "roles": "only the stage's hosts with these roles (app, db)",
    "accept_new_host_keys": "record the key of a host never seen before in known_hosts (a changed key is always refused)",
}
LOCK_HELP = {
    "wait_lock": "seconds to wait while another task holds the deploy lock (default 0: fail at once, naming the holder)",
}
HOST_HELP = {
    "host": "the host to work on (when the stage has several)",
    "accept_new_host_keys": HOSTS_HELP["accept_new_host_keys"],
}


@dataclass(frozen=True)
class Where:
    """Where a task acts: the stage, its env file, and which of its hosts."""

    stage: str | None = None
    env_file: str | None = None
    hosts: str | None = None
    roles: str | None = None
    accept_new_host_keys: bool = False
    wait_lock: str | None = None

    @property
    def lock_wait(self) -> int:
        """--wait-lock in seconds (0 when not given)."""
        return optional_number("--wait-lock", self.wait_lock, default=0)


# the flags of each kind of task: flag (parameter name) -> the field of Where it fills
STAGE_FLAGS = {"stage": "stage", "env_file": "env_file"}
HOSTS_FLAGS = {**STAGE_FLAGS, "hosts": "hosts", "roles": "roles", "accept_new_host_keys": "accept_new_host_keys"}
HOST_FLAGS = {**STAGE_FLAGS, "host": "hosts", "accept_new_host_keys": "accept_new_host_keys"}
LOCK_FLAGS = {"wait_lock": "wait_lock"}


ReadsOnly = Callable[[Mapping[str, Any]], bool]  # from a task's arguments: this call changes nothing


def dry_run(args: Mapping[str, Any]) -> bool:
    return bool(args.get("dry_run"))


def on_stage(locks: bool = False, held: str = "", reads_only: ReadsOnly = dry_run, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """A task acting on this machine: --stage and --env-file (and --wait-lock with
    ``locks`` or ``held``). ``options`` are ``invoke.task``'s (help, positional, iterable, name)."""
    return _where_task(STAGE_FLAGS, STAGE_HELP, options, held, reads_only, locks)


def on_hosts(locks: bool = False, held: str = "", reads_only: ReadsOnly = dry_run, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """A task acting on the stage's hosts (or the local engine): --stage, --env-file,
    --hosts, --roles, --accept-new-host-keys (and --wait-lock with ``locks`` or ``held``)."""
    return _where_task(HOSTS_FLAGS, {**STAGE_HELP, **HOSTS_HELP}, options, held, reads_only, locks)


def on_host(locks: bool = False, held: str = "", reads_only: ReadsOnly = dry_run, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """A task acting on one host: --stage, --env-file, --host, --accept-new-host-keys
    (and --wait-lock with ``locks`` or ``held``)."""
    return _where_task(HOST_FLAGS, {**STAGE_HELP, **HOST_HELP}, options, held, reads_only, locks)


def _where_task(flags: Mapping[str, str], helps: Mapping[str, str], options: dict[str, Any], held: str, reads_only: ReadsOnly,
                locks: bool = False) -> Callable[[Callable[..., Any]], Task]:
    if locks or held:
        flags, helps = {**flags, **LOCK_FLAGS}, {**helps, **LOCK_HELP}

    def decorate(body: Callable[..., Any]) -> Task:
        run = under_lock(body, held, reads_only) if held else body
        return Task(with_where(run, flags), **{**options, "help": {**helps, **options.get("help", {})}})

    return decorate


def under_lock(body: Callable[..., Any], purpose: str, reads_only: ReadsOnly) -> Callable[..., Any]:
    """``body`` run holding the deploy lock of its stage for ``purpose``, audited with the
    arguments given, unless ``reads_only`` says they change nothing."""
    sig = inspect.signature(body)

    @functools.wraps(body)
    def locked(c: Any, *args: Any, where: Where, **kwargs: Any) -> Any:
        given = sig.bind_partial(c, *args, **kwargs).arguments
        if reads_only(given):
            return body(c, *args, where=where, **kwargs)
        from deploy.state import lock
        from tasks._open import open_fleet  # tasks._open reads Where from here

        flags = {k: v for k, v in list(given.items())[1:] if v not in (None, False, "")}
        with lock.held(open_fleet(c, where).primary.stack, purpose, wait=where.lock_wait, **flags):
            return body(c, *args, where=where, **kwargs)

    return locked


def with_where(body: Callable[..., Any], flags: Mapping[str, str]) -> Callable[..., Any]:
    """``body`` (which takes ``where``) as a function taking ``flags`` instead, after its
    own parameters; what they are given becomes its ``where``."""
    sig = inspect.signature(body)
    own = [p for p in sig.parameters.values() if p.name != "where"]
    added = [inspect.Parameter(flag, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False if field == "accept_new_host_keys" else None)
             for flag, field in flags.items()]

    @functools.wraps(body)
    def task_body(c: Any, *args: Any, **kwargs: Any) -> Any:
        given = {field: kwargs.pop(flag) for flag, field in flags.items() if flag in kwargs}
        given["accept_new_host_keys"] = bool(given.get("accept_new_host_keys", False))
        return body(c, *args, where=Where(**given), **kwargs)

    task_body.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
    return task_body
