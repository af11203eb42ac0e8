"""What every task shares: finding the config, opening the stack, common flags."""
from __future__ import annotations

import sys
from pathlib import Path

from invoke import Context

from deploy.config import DeployConfig, parse_config, plain
from deploy import releases
from deploy.errors import fail
from deploy.settings import resolve
from deploy.stack import Stack
from deploy.target import LocalTarget

ROOT = Path(__file__).resolve().parent.parent

STAGE_HELP = {
    "stage": "stage from invoke.yaml deploy.stages (default: deploy.default_stage)",
    "env_file": "env file to use instead of the stage's own",
}


def helps(**extra: str) -> dict[str, str]:
    """Help texts for a task: its own flags plus --stage and --env-file."""
    return {**STAGE_HELP, **extra}


def load_config(c: Context) -> DeployConfig:
    return parse_config(plain(c.config.get("deploy") or {}), ROOT)


def open_stack(c: Context, stage: str | None, env_file: str | None) -> Stack:
    """The stack of the stage, on the local engine, naming the images of the release now
    serving (unless APP_VERSION is set)."""
    settings = resolve(load_config(c), stage, env_file)
    return releases.pin_current(Stack(settings, LocalTarget(c)))


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
