"""The `scale` namespace: `inv scale --backend N --web M [--set SVC=N]`."""
from invoke import Collection, Context

from tasks._open import MAX_SURGE_HELP, load_config, open_fleet
from tasks._where import Where, on_hosts


@on_hosts(
    locks=True,
    iterable=["set"],
    help={
        "backend": "replicas of backend",
        "web": "replicas of web",
        "set": "SERVICE=COUNT for any other stateless service; repeat for several",
        "yes": "confirm a count of 0",
        "max_surge": MAX_SURGE_HELP,
    },
)
def scale(
    c: Context,
    backend: str | None = None,
    web: str | None = None,
    set: list[str] | None = None,  # noqa: A002 (the flag is --set)
    yes: bool = False,
    max_surge: str | None = None,
    *,
    where: Where,
) -> None:
    """Scale stateless services, e.g. `inv scale --backend 5 --web 2`; the counts persist.

    The proxy keeps serving while containers start or drain; stateful services are refused.
    On hosts, the counts apply to each app host (narrow with --hosts); on a swarm, to the
    whole swarm (Swarm places the tasks).
    """
    from deploy.engine.ops import Executor
    from deploy.output import say
    from deploy.stack import scale as scalemod
    from deploy.stack.owner import refuse_other_stage
    from deploy.state import lock
    from deploy.swarm.scale import scale as swarm_scale

    requested = scalemod.parse_assignments(set or [])
    for name, value in (("backend", backend), ("web", web)):
        if value is not None:
            requested[name] = value
    counts = scalemod.plan(load_config(c), requested, yes)
    fleet = open_fleet(c, where, max_surge)
    refuse_other_stage(fleet)
    with lock.held(fleet.primary.stack, "scale", wait=where.lock_wait, counts=counts):
        Executor()(swarm_scale(fleet, counts, load_config(c).up_timeout) if fleet.swarm else scalemod.apply_fleet(fleet, counts))
    say("scaled: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


ns = Collection("scale")
ns.add_task(scale, default=True)
