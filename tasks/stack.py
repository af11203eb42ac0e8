"""`inv up` and `inv down`: start and stop the stack."""
from invoke import Context

from tasks._input import confirm_typed
from tasks._open import compose_only, open_fleet
from tasks._show import on_which, served_at
from tasks._where import Where, on_hosts


@on_hosts(locks=True, help={"build": "build the images first (local engine only; hosts pull them)"})
def up(c: Context, build: bool = False, *, where: Where) -> None:
    """Start the stack (keeping `inv scale` counts) and wait until every container is healthy.

    On hosts: uploads the compose and env files, pulls the images, starts each host's
    role services, the db host first.
    """
    from deploy.engine.ops import Executor
    from deploy.output import say, styled
    from deploy.stack import lifecycle
    from deploy.stack.owner import refuse_other_stage
    from deploy.state import lock

    fleet = compose_only(open_fleet(c, where), "up", "deploy to a swarm with inv deploy --version X.Y.Z")
    refuse_other_stage(fleet)
    with lock.held(fleet.primary.stack, "up", wait=where.lock_wait, build=build):
        Executor()(lifecycle.up_fleet(fleet, build=build))
    up = f"{fleet.settings.stage.project} ({fleet.settings.stage.name}) is up{on_which(fleet)}{served_at(fleet)}"
    say(styled(up, "green") + "; see `inv status`")


@on_hosts(locks=True, help={"volumes": "also delete the volumes (the database!): asks for the database's name",
                             "yes": "with --volumes: do not ask (for CI)"})
def down(c: Context, volumes: bool = False, yes: bool = False, *, where: Where) -> None:
    """Stop and remove the stack's containers. Volumes are kept unless --volumes (asks for the database's name; --yes does not ask)."""
    from deploy.database.session import Database
    from deploy.engine.ops import Executor
    from deploy.stack import lifecycle
    from deploy.stack.owner import refuse_other_stage
    from deploy.state import lock

    fleet = compose_only(open_fleet(c, where), "down", "remove the stack with docker stack rm PROJECT on a manager (volumes stay)")
    refuse_other_stage(fleet)
    if volumes:
        s = fleet.settings
        name = Database(fleet.primary.stack).name
        confirm_typed(name, f"delete the volumes of {s.stage.project} (stage {s.stage.name}{on_which(fleet)}), the database {name} among them "
                            "(back it up first: inv db.backup)", yes)
    with lock.held(fleet.primary.stack, "down", wait=where.lock_wait, volumes=volumes):
        Executor()(lifecycle.down_fleet(fleet, volumes=volumes))
