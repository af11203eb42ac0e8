"""The `swarm` namespace: a Docker Swarm stage's nodes (docs/swarm.md)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection, Context

from tasks._open import open_fleet
from tasks._where import Where, on_hosts

if TYPE_CHECKING:
    from deploy.fleet import Fleet


def _swarm_fleet(c: Context, where: Where) -> Fleet:
    from deploy.errors import fail

    fleet = open_fleet(c, where)
    if not fleet.swarm:
        fail(f"stage {fleet.settings.stage.name} is not a swarm", "set engine: swarm on the stage in invoke.yaml, with its hosts' roles")
    return fleet


@on_hosts(held="swarm.init", help={"dry_run": "print every command, and change nothing"})
def init(c: Context, dry_run: bool = False, *, where: Where) -> None:
    """Form the stage's swarm: init on the first manager, join the other hosts, label the edge and db nodes (again: fixes what is missing)."""
    from deploy.engine.ops import Executor
    from deploy.output import say
    from deploy.swarm import cluster

    fleet = _swarm_fleet(c, where)
    Executor(dry_run=dry_run, hosts=True)(cluster.init(fleet))
    if not dry_run:
        say(f"swarm of {', '.join(fleet.host_names())} ready (inv swarm.status --stage {fleet.settings.stage.name})")


@on_hosts()
def status(c: Context, *, where: Where) -> None:
    """The swarm's nodes (role, state, availability, labels) and the stack's services (replicas, version, last update)."""
    from deploy.output import styled, table
    from deploy.swarm import cluster

    fleet = _swarm_fleet(c, where)
    found = cluster.nodes(fleet.primary.stack)
    hosts = {node.id: m.name for m in fleet.members if (node := cluster.node_of(m, found))}
    table(f"nodes of {fleet.settings.stage.name}", ["host", "node", "address", "role", "state", "availability", "labels"],
          ((hosts.get(n.id, "(not in the stage)"), n.hostname + (" (leader)" if n.leader else ""), n.address, n.role,
            n.state if n.state == "ready" else styled(n.state, "red"), n.availability,
            ",".join(k for k, v in n.labels if v == "true")) for n in found))
    show_services(fleet)


def show_services(fleet: Fleet) -> None:
    """The stack's services: running/desired tasks, version, last update (also `inv status`)."""
    from deploy.output import say, table
    from deploy.swarm import cluster

    rows = cluster.service_rows(fleet)
    if not rows:
        say(f"no services of {fleet.settings.stage.project} run on the swarm: inv deploy --stage {fleet.settings.stage.name} --version X.Y.Z")
        return
    table(f"{fleet.settings.stage.project} ({fleet.settings.stage.name}) on the swarm",
          ["service", "running", "version", "update", "nodes"], rows)


ns = Collection("swarm")
ns.add_task(init)
ns.add_task(status)
