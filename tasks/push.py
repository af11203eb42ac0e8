"""The `push` namespace: `inv push [--version V]` pushes a release's tags (this machine)."""
from invoke import Collection, Context

from tasks._open import open_fleet
from tasks._where import Where, on_stage


@on_stage(locks=True, help={"version": "the release whose images to push (default: the one now serving)"})
def push(c: Context, version: str | None = None, *, where: Where) -> None:
    """Push a release's images (every tag) from this machine's engine to the registry, with retries."""
    from deploy.engine.ops import Executor
    from deploy.errors import fail
    from deploy.release.push import push_release
    from deploy.state import history as releases
    from deploy.state import lock
    from deploy.versions import given

    fleet = open_fleet(c, where)  # the history and the lock are the stage's (on hosts: its db host)
    home = fleet.primary.stack
    serving = releases.current(home)
    wanted = version or (serving.version if serving else None)
    if not wanted:
        fail("no --version given and no release deployed", "inv push --version X.Y.Z")
    with lock.held(home, f"push {wanted}", wait=where.lock_wait):
        push_release(fleet.here, given(wanted), Executor(), home=home)


ns = Collection("push")
ns.add_task(push, default=True)
