"""What every task shares: finding the config, opening the stack, common flags."""
from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from invoke import Context

from deploy.state import history as releases
from deploy.config.schema import DeployConfig, parse_config, plain
from deploy.errors import fail
from deploy.fleet import Fleet, local_fleet, remote_fleet
from deploy.config.inventory import ad_hoc_hosts, select, split_list
from deploy.config.settings import resolve
from deploy.engine.stack import Stack
from deploy.engine.target import LocalTarget

ROOT = Path(__file__).resolve().parent.parent

STAGE_HELP = {
    "stage": "stage from invoke.yaml deploy.stages (default: deploy.default_stage)",
    "env_file": "env file to use instead of the stage's own",
}


HOSTS_HELP = {
    "hosts": "only these hosts of the stage (h1,h2); without a stage: one host by address or ~/.ssh/config alias",
    "roles": "only the stage's hosts with these roles (app, db)",
    "accept_new_host_keys": "record the key of a host never seen before in known_hosts (a changed key is always refused)",
}
ONE_HOST_HELP = {
    "host": "the host to work on (when the stage has several)",
    "accept_new_host_keys": HOSTS_HELP["accept_new_host_keys"],
}


def helps(**extra: str) -> dict[str, str]:
    """Help texts for a task on this machine: its own flags plus --stage and --env-file."""
    return {**STAGE_HELP, **extra}


def host_helps(**extra: str) -> dict[str, str]:
    """Help texts for a task of ``on_hosts``: also --hosts, --roles, --accept-new-host-keys."""
    return {**STAGE_HELP, **HOSTS_HELP, **extra}


def one_host_helps(**extra: str) -> dict[str, str]:
    """Help texts for a task of ``on_hosts(one_host=True)``: also --host."""
    return {**STAGE_HELP, **ONE_HOST_HELP, **extra}


@dataclass(frozen=True)
class Where:
    """Where a task acts: the stage, its env file, and which of its hosts."""

    stage: str | None = None
    env_file: str | None = None
    hosts: str | None = None
    roles: str | None = None
    accept_new_host_keys: bool = False


def on_hosts(body: Callable[..., Any] | None = None, *, one_host: bool = False) -> Any:
    """Give a task the flags of ``Where`` (--stage, --env-file, --hosts, --roles,
    --accept-new-host-keys; with ``one_host`` --host instead of --hosts and --roles) and
    pass them to it as ``where``."""
    if body is None:
        return functools.partial(on_hosts, one_host=one_host)
    renamed = {"hosts": "host"} if one_host else {}
    names = [renamed.get(f.name, f.name) for f in fields(Where) if not (one_host and f.name == "roles")]
    sig = inspect.signature(body)
    own = [p for p in sig.parameters.values() if p.name != "where"]
    added = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False if n.startswith("accept") else None)
             for n in names]

    @functools.wraps(body)
    def task_body(c: Context, *args: Any, **kwargs: Any) -> Any:
        given = {f: kwargs.pop(renamed.get(f, f), None) for f in ("stage", "env_file", "hosts", "roles")}
        where = Where(**given, accept_new_host_keys=bool(kwargs.pop("accept_new_host_keys", False)))
        return body(c, *args, where=where, **kwargs)

    task_body.__signature__ = sig.replace(parameters=own + added)  # type: ignore[attr-defined]
    return task_body


def load_config(c: Context) -> DeployConfig:
    return parse_config(plain(c.config.get("deploy") or {}), ROOT)


def open_stack(c: Context, stage: str | None, env_file: str | None) -> Stack:
    """The stack of the stage, on the local engine, naming the images of the release now
    serving (unless APP_VERSION is set)."""
    settings = resolve(load_config(c), stage, env_file)
    return releases.pin_current(Stack(settings, LocalTarget(c)))


def open_fleet(c: Context, where: Where) -> Fleet:
    """The hosts a task acts on: the local engine when the stage has no hosts and none
    are given, else the stage's hosts narrowed by --hosts and --roles."""
    settings = resolve(load_config(c), where.stage, where.env_file)
    names, roles = split_list(where.hosts), split_list(where.roles)
    stage = settings.stage
    hosts = stage.hosts or (ad_hoc_hosts(names, settings.config.project) if names else ())
    if not hosts:
        if roles:
            fail(f"--roles needs a stage with hosts, and {stage.name} has none", "list them under deploy.stages.NAME.hosts")
        return local_fleet(settings, LocalTarget(c))
    chosen = select(hosts, names if stage.hosts else [], roles, stage.name)
    return remote_fleet(settings, hosts, chosen, where.accept_new_host_keys, here=LocalTarget(c))


def service_list(config: DeployConfig, services: str) -> list[str]:
    """'all' (every service) or a comma-separated list of known services."""
    names = [] if services in ("", "all") else [s.strip() for s in services.split(",") if s.strip()]
    config.check_services(names)
    return names


def command_after_dashes(argv: list[str] | None = None) -> list[str]:
    """The words after ``--`` on the command line, exactly as the shell split them."""
    argv = sys.argv if argv is None else argv
    if "--" not in argv:
        fail("no command given", "put the command after --, e.g. inv exec backend -- node -v")
    command = argv[argv.index("--") + 1 :]
    if not command:
        fail("empty command after --", "put the command after --, e.g. inv exec backend -- node -v")
    return command


def confirm_typed(expected: str, action: str, yes: bool) -> None:
    """Ask the user to type ``expected`` before ``action``; --yes skips; no terminal = refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"refusing to {action} without confirmation: there is no terminal to ask on", "pass --yes")
    answer = input(f"This will {action}. Type {expected!r} to confirm: ")
    if answer.strip() != expected:
        fail("the confirmation did not match; nothing was changed", f"type {expected} exactly, or pass --yes")


def whole_number(flag: str, raw: object, minimum: int = 0) -> int:
    """A flag's value as a whole number of at least ``minimum``, or a clear error."""
    text = str(raw).strip()
    if not text.lstrip("-").isdigit() or int(text) < minimum:
        fail(f"{flag} {raw!r} is not a whole number of at least {minimum}", f"give {flag} {max(minimum, 1)} or more")
    return int(text)


def served_at(stack: Stack) -> str:
    """', served at http://127.0.0.1:PORT/' when the proxy is published, else ''."""
    port = stack.proxy_port()
    return f", served at http://127.0.0.1:{port}/" if port else ""
