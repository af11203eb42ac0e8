from invoke import Collection, Context, task

from deploy.state import lock as lockmod
from deploy.output import say
from tasks._common import Where, one_host_helps, on_hosts, open_fleet


@task(help=one_host_helps())
@on_hosts(one_host=True)
def status(c: Context, *, where: Where) -> None:
    """Who holds the deploy lock, since when, and whether it is stale (on a stage with hosts: kept on its db host)."""
    info = lockmod.read(open_fleet(c, where).primary.stack)
    say(f"locked: {lockmod.describe(info)}" if info else "not locked")


@task(help=one_host_helps(force="also break a lock whose holder still runs (or runs elsewhere)"))
@on_hosts(one_host=True)
def release(c: Context, force: bool = False, *, where: Where) -> None:
    """Break the deploy lock: a stale one (its process is gone), or any with --force."""
    info = lockmod.release(open_fleet(c, where).primary.stack, force=force)
    say(f"released: {lockmod.describe(info)}" if info else "not locked")


ns = Collection("lock", status, release)
