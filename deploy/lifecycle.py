"""Build, start and stop the stack."""
from __future__ import annotations

from collections.abc import Sequence

from deploy.commands import compose
from deploy.errors import fail
from deploy.stack import Stack


def build(stack: Stack, services: Sequence[str] = (), no_cache: bool = False) -> None:
    stack.settings.config.check_services(list(services))
    stack.run(
        compose.build(stack.project, services, no_cache=no_cache),
        what="building images",
        fix="read the build output above; fix the Dockerfile or the build context",
        hide=False,
    )


def up(stack: Stack, build: bool = False) -> None:
    """Start (or update) every service and wait until all are healthy.

    Replica counts set with ``inv scale`` are applied, so they survive an ``up``.
    """
    argv = compose.up(
        stack.project,
        build=build,
        scale=stack.saved_scale(),
        wait_timeout=stack.settings.config.up_timeout,
    )
    stack.run(argv, what="starting the stack", fix="see `inv health` and `inv logs SERVICE`", hide=False)


def down(stack: Stack, volumes: bool = False, yes: bool = False) -> None:
    """Stop and remove the containers; volumes (the database!) only with ``yes``."""
    if volumes and not yes:
        fail(
            "--volumes deletes the stack's volumes, the database among them",
            "add --yes to confirm, after `inv db.backup` if the data matters",
        )
    stack.run(compose.down(stack.project, volumes=volumes), what="stopping the stack", hide=False)
