"""What the user typed, checked: numbers, service lists, a command after --, a
confirmation. Bad input stops the task with the reason and a fix, never a traceback.

The library is imported where it is used, not here: the task modules import this one
at `inv --list` (tests/unit/test_cli_startup.py)."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deploy.config.schema import DeployConfig


def whole_number(flag: str, raw: object, minimum: int = 0) -> int:
    """A flag's value as a whole number of at least ``minimum``, or a clear error.

    Flags that take numbers are declared as strings (default None) and read here, so
    `--tail abc` says what is wrong instead of raising in Invoke's parser."""
    from deploy.errors import fail

    text = str(raw).strip()
    if not text.lstrip("-").isdigit() or int(text) < minimum:
        fail(f"{flag} {raw!r} is not a whole number of at least {minimum}", f"give {flag} a whole number, {minimum} or more")
    return int(text)


def optional_number(flag: str, raw: str | None, default: int, minimum: int = 0) -> int:
    """``whole_number`` of a flag that may be left out (then ``default``)."""
    return default if raw is None else whole_number(flag, raw, minimum)


def service_list(config: DeployConfig, services: str) -> list[str]:
    """'all' (every service) or a comma-separated list of known services."""
    names = [] if services in ("", "all") else [s.strip() for s in services.split(",") if s.strip()]
    config.check_services(names)
    return names


def command_after_dashes(argv: list[str] | None = None) -> list[str]:
    """The words after ``--`` on the command line, exactly as the shell split them."""
    from deploy.errors import fail

    argv = sys.argv if argv is None else argv
    if "--" not in argv:
        fail("no command given", "put the command after --, e.g. inv exec backend -- node -v")
    command = argv[argv.index("--") + 1 :]
    if not command:
        fail("empty command after --", "put the command after --, e.g. inv exec backend -- node -v")
    return command


def confirm_typed(expected: str, action: str, yes: bool) -> None:
    """Ask the user to type ``expected`` before ``action``; --yes skips; no terminal = refuse."""
    from deploy.errors import fail

    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"refusing to {action} without confirmation: there is no terminal to ask on", "pass --yes")
    answer = input(f"This will {action}. Type {expected!r} to confirm: ")
    if answer.strip() != expected:
        fail("the confirmation did not match; nothing was changed", f"type {expected} exactly, or pass --yes")
