from invoke import Context, task

from deploy import lifecycle
from deploy.output import say
from tasks._common import helps, open_stack, served_at


@task(help=helps(build="build the images first"))
def up(c: Context, build: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Start the stack (keeping `inv scale` counts) and wait until every container is healthy."""
    stack = open_stack(c, stage, env_file)
    lifecycle.up(stack, build=build)
    say(f"[green]{stack.settings.config.project} ({stack.settings.stage.name}) is up{served_at(stack)}[/green]; see `inv status`")


@task(help=helps(volumes="also delete the volumes (the database!); needs --yes", yes="confirm --volumes"))
def down(c: Context, volumes: bool = False, yes: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Stop and remove the stack's containers. Volumes are kept unless --volumes --yes."""
    lifecycle.down(open_stack(c, stage, env_file), volumes=volumes, yes=yes)
