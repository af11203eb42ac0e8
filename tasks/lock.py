from invoke import Collection, Context, task

from deploy import lock as lockmod
from deploy.output import say
from tasks._common import helps, open_stack


@task(help=helps())
def status(c: Context, stage: str | None = None, env_file: str | None = None) -> None:
    """Who holds the deploy lock, since when, and whether it is stale."""
    info = lockmod.read(open_stack(c, stage, env_file))
    say(f"locked: {lockmod.describe(info)}" if info else "not locked")


@task(help=helps(force="also break a lock whose holder still runs (or runs elsewhere)"))
def release(c: Context, force: bool = False, stage: str | None = None, env_file: str | None = None) -> None:
    """Break the deploy lock: a stale one (its process is gone), or any with --force."""
    info = lockmod.release(open_stack(c, stage, env_file), force=force)
    say(f"released: {lockmod.describe(info)}" if info else "not locked")


ns = Collection("lock", status, release)
