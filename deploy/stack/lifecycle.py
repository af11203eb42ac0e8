"""Build, start and stop the stack."""
from __future__ import annotations

from collections.abc import Sequence

from deploy.engine.commands import compose
from deploy.errors import fail
from deploy.engine.stack import Stack
from deploy.engine.upload import upload


def build(stack: Stack, services: Sequence[str] = (), no_cache: bool = False) -> None:
    stack.settings.config.check_services(list(services))
    stack.run(
        compose.build(stack.project, services, no_cache=no_cache),
        what="building images",
        fix="read the build output above; fix the Dockerfile or the build context",
        hide=False,
    )


def pull(stack: Stack, services: Sequence[str]) -> None:
    """On a host: pull the services' images (of the release the stack names)."""
    stack.run(compose.pull(stack.project, services), what="pulling images",
              fix="check that the host reaches the registry (DOCKER_REGISTRY) and that the images were pushed (inv push)")


def up(stack: Stack, build: bool = False, services: Sequence[str] = ()) -> None:
    """Start (or update) the services (all: every one) and wait until they are healthy.

    Replica counts set with ``inv scale`` are applied, so they survive an ``up``. On a
    host, only its role's services, after uploading the files and pulling the images.
    """
    if not stack.target.local:
        upload(stack)
        pull(stack, services)
    scale = {k: v for k, v in stack.saved_scale().items() if not services or k in services}
    argv = compose.up(
        stack.project,
        services,
        build=build,
        scale=scale,
        no_deps=bool(services),
        wait_timeout=stack.settings.config.up_timeout,
    )
    stack.run(argv, what="starting the stack", fix="see `inv health` and `inv logs SERVICE`", hide=False)


def check_down(volumes: bool, yes: bool) -> None:
    if volumes and not yes:
        fail(
            "--volumes deletes the stack's volumes, the database among them",
            "add --yes to confirm, after `inv db.backup` if the data matters",
        )


def down(stack: Stack, volumes: bool = False) -> None:
    """Stop and remove the project's containers on the target; volumes (the database!)
    only when asked (``check_down`` first)."""
    stack.run(compose.down(stack.project, volumes=volumes), what="stopping the stack", hide=False)
