"""The `lock` namespace: the deploy lock, shown and broken."""
from invoke import Collection, Context

from tasks._open import open_fleet
from tasks._where import Where, on_host


@on_host()
def status(c: Context, *, where: Where) -> None:
    """Who holds the deploy lock, for what, since when, its last heartbeat, and whether it is stale (on the db host; a swarm: its manager)."""
    from deploy.output import say
    from deploy.state import lock as lockmod

    info = lockmod.read(open_fleet(c, where).primary.stack)
    say(f"locked: {lockmod.describe(info)}" if info else "not locked")


@on_host(help={"force": "also break a lock whose holder may still run (or runs elsewhere); audited"})
def release(c: Context, force: bool = False, *, where: Where) -> None:
    """Break the deploy lock: a stale one (its process is gone, or no heartbeat), or any with --force.

    The break is in the audit log (who broke whose lock); the release the lock guarded is marked interrupted.
    """
    from deploy.output import say
    from deploy.state import lock as lockmod

    info = lockmod.break_lock(open_fleet(c, where).primary.stack, force=force)
    say(f"released: {lockmod.describe(info)}" if info else "not locked")


ns = Collection("lock", status, release)
