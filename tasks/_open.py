"""What a task acts on, opened from invoke.yaml and its flags: the settings of a stage,
its stack on this machine, or the fleet of hosts (the local engine when it has none).

The library is imported where it is used, not here: the task modules import this one
at `inv --list` (tests/unit/test_cli_startup.py)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke import Context

from tasks._where import Where

if TYPE_CHECKING:
    from deploy.config.schema import DeployConfig
    from deploy.config.settings import Settings
    from deploy.engine.stack import Stack
    from deploy.fleet import Fleet

ROOT = Path(__file__).resolve().parent.parent  # the repository: invoke.yaml, .env.example, compose/


def load_config(c: Context) -> DeployConfig:
    """invoke.yaml's ``deploy:`` section, validated."""
    from deploy.config.schema import parse_config, plain

    return parse_config(plain(c.config.get("deploy") or {}), ROOT)


def open_settings(c: Context, where: Where) -> Settings:
    """The stage's settings: its env file (or --env-file) merged with the environment."""
    from deploy.config.settings import resolve

    return resolve(load_config(c), where.stage, where.env_file)


def open_stack(c: Context, where: Where) -> Stack:
    """The stack of the stage on this machine's engine, naming the images of the release
    now serving (unless APP_VERSION is set)."""
    from deploy.engine.local import LocalTarget
    from deploy.engine.stack import Stack
    from deploy.state import history as releases

    return releases.pin_current(Stack(open_settings(c, where), LocalTarget(c)))


MAX_SURGE_HELP = ("new app containers started at once, each batch ready before the next "
                  "(default: deploy.max_surge, whose 0 means twice the host's CPUs; Compose only)")


def open_fleet(c: Context, where: Where, max_surge: str | None = None) -> Fleet:
    """The hosts a task acts on (deploy.fleet.open_fleet): the local engine when the stage
    has no hosts and none are given, else the stage's hosts narrowed by --hosts and --roles.
    ``max_surge``: the task's --max-surge, which replaces deploy.max_surge for this run
    (refused on a swarm, where the services' update_config.parallelism decides)."""
    from deploy import fleet
    from deploy.config.inventory import split_list
    from deploy.engine.local import LocalTarget
    from deploy.errors import fail

    if max_surge is not None:
        override_max_surge(c, max_surge)
    found = fleet.open_fleet(open_settings(c, where), split_list(where.hosts), split_list(where.roles), where.accept_new_host_keys,
                             LocalTarget(c))
    if max_surge is not None and found.swarm:
        fail(f"--max-surge does not apply to a swarm stage ({found.settings.stage.name}): Swarm starts the new tasks",
             "set update_config.parallelism of the services in the compose files, or drop --max-surge")
    return found


def override_max_surge(c: Context, raw: str) -> None:
    """--max-surge N: deploy.max_surge is N for this run (a whole number, 1 or more)."""
    from deploy.config.schema import plain
    from tasks._input import whole_number

    config: Any = c.config  # Invoke types an item's value as str; it takes any
    config["deploy"] = {**plain(c.config.get("deploy") or {}), "max_surge": whole_number("--max-surge", raw, minimum=1)}


def compose_only(found: Fleet, task: str, instead: str) -> Fleet:
    """``found``, for a task that works on Compose projects only: a swarm stage is
    refused, saying what to do ``instead``."""
    from deploy.errors import fail

    if found.swarm:
        fail(f"inv {task} does not work on a swarm stage yet ({found.settings.stage.name})", instead)
    return found
