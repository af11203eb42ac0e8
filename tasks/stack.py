"""`inv up` and `inv down`: start and stop the stack."""
from invoke import Context

from deploy.engine.ops import Executor
from deploy.output import say, styled
from deploy.stack import lifecycle
from deploy.state import lock
from tasks._open import compose_only, open_fleet
from tasks._show import on_which, served_at
from tasks._where import Where, on_hosts


@on_hosts(locks=True, help={"build": "build the images first (local engine only; hosts pull them)"})
def up(c: Context, build: bool = False, *, where: Where) -> None:
    """Start the stack (keeping `inv scale` counts) and wait until every container is healthy.

    On hosts: uploads the compose and env files, pulls the images, starts each host's
    role services, the db host first.
    """
    fleet = compose_only(open_fleet(c, where), "up", "deploy to a swarm with inv deploy --version X.Y.Z")
    with lock.held(fleet.primary.stack, "up", wait=where.lock_wait, build=build):
        Executor()(lifecycle.up_fleet(fleet, build=build))
    up = f"{fleet.settings.config.project} ({fleet.settings.stage.name}) is up{on_which(fleet)}{served_at(fleet)}"
    say(styled(up, "green") + "; see `inv status`")


@on_hosts(locks=True, help={"volumes": "also delete the volumes (the database!); needs --yes", "yes": "confirm --volumes"})
def down(c: Context, volumes: bool = False, yes: bool = False, *, where: Where) -> None:
    """Stop and remove the stack's containers. Volumes are kept unless --volumes --yes."""
    lifecycle.check_down(volumes, yes)
    fleet = compose_only(open_fleet(c, where), "down", "remove the stack with docker stack rm PROJECT on a manager (volumes stay)")
    with lock.held(fleet.primary.stack, "down", wait=where.lock_wait, volumes=volumes):
        Executor()(lifecycle.down_fleet(fleet, volumes=volumes))
