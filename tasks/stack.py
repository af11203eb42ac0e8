from invoke import Context, task

from deploy.stack import lifecycle
from deploy.errors import fail
from deploy.output import say
from tasks._common import Where, host_helps, on_hosts, open_fleet, served_at


@task(help=host_helps(build="build the images first (local engine only; hosts pull them)"))
@on_hosts
def up(c: Context, build: bool = False, *, where: Where) -> None:
    """Start the stack (keeping `inv scale` counts) and wait until every container is healthy.

    On hosts: uploads the compose and env files, pulls the images, starts each host's
    role services, the db host first.
    """
    fleet = open_fleet(c, where)
    if not fleet.remote:
        stack = fleet.primary.stack
        lifecycle.up(stack, build=build)
        say(f"[green]{stack.settings.config.project} ({stack.settings.stage.name}) is up{served_at(stack)}[/green]; see `inv status`")
        return
    if build:
        fail("--build builds on this machine's engine; hosts pull their images from the registry",
             f"build and push with inv deploy --stage {fleet.settings.stage.name} --version X.Y.Z, or drop --build")
    for batch in fleet.ordered():
        fleet.each(lambda m: lifecycle.up(m.stack, services=m.services()), what="up", members=batch)
    say(f"[green]{fleet.settings.config.project} ({fleet.settings.stage.name}) is up on {', '.join(m.name for m in fleet.members)}[/green]")


@task(help=host_helps(volumes="also delete the volumes (the database!); needs --yes", yes="confirm --volumes"))
@on_hosts
def down(c: Context, volumes: bool = False, yes: bool = False, *, where: Where) -> None:
    """Stop and remove the stack's containers. Volumes are kept unless --volumes --yes."""
    lifecycle.check_down(volumes, yes)
    fleet = open_fleet(c, where)
    fleet.each(lambda m: lifecycle.down(m.stack, volumes=volumes), what="down")
